//! The unedited model's answers, kept on disk between runs: with the same model, question, frame and
//! scoring they are the same in every run, and computing them was a third of a record's time.
//!
//! One JSON-lines file per model fingerprint: line 1 a header, then one answer per line, keyed by a
//! digest of what determines it. Lines are appended and flushed one by one; a line cut short by a
//! crash, or damaged, is skipped. What the key cannot see (a change to the runtime's arithmetic or to
//! how answers are generated, in a newer lafn) is caught by computing the first reused answer of a
//! run again: when it differs, every kept answer is dropped and computed anew.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::methods::{Answer, Question, Scoring};
use crate::runtime::PromptFrame;
use crate::storage;
use crate::Result;

/// Version of the file's format (and of the key's recipe). 2: generated answers start at their first
/// line with a letter or digit (`method::apply::generate_text`), so answers kept before are others.
/// 3: a generated answer's budget grows with the expected answer's length, so the key reads it.
const FORMAT_VERSION: u32 = 3;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Header {
    lafn_unedited_answers: u32,
    model_fingerprint: String,
}

/// One kept answer in one scoring mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Kept {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    predicted: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generated: Option<(String, Vec<u32>)>,
}

/// The unedited model's answers of this and earlier runs.
pub struct UneditedAnswers {
    kept: HashMap<String, Kept>,
    file: Option<KeptFile>,
    /// A reused answer was computed again and matched (or there was nothing to reuse yet).
    checked: bool,
}

struct KeptFile {
    path: PathBuf,
    header: Header,
    file: File,
}

/// The key of a question's answer in one scoring mode: what determines that answer, digested.
fn key(mode: &str, frame: PromptFrame, question: &Question) -> String {
    let mut hasher = Sha256::new();
    for part in [mode, &format!("{frame:?}"), &question.prompt] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    // Teacher forcing feeds the expected answer; generation reads its length (its token budget).
    hasher.update(question.answer.as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

const TEACHER_FORCED: &str = "teacher-forced";
const GENERATED: &str = "generated";

impl UneditedAnswers {
    /// Answers kept for this run only.
    pub fn in_memory() -> Self {
        Self { kept: HashMap::new(), file: None, checked: true }
    }

    /// The answers kept in `dir` for the model `model_fingerprint` (which also names the arithmetic
    /// it computes with: `Model::arithmetic`). A file that cannot be read or
    /// written is reported and the run keeps its answers in memory: never a reason to fail a run.
    pub fn open(dir: &Path, model_fingerprint: &str) -> Self {
        let path = dir.join(format!("{model_fingerprint}.jsonl"));
        match Self::open_file(&path, model_fingerprint) {
            Ok(answers) => answers,
            Err(e) => {
                log::warn!("the unedited model's answers are not kept between runs: {e:#}");
                Self::in_memory()
            }
        }
    }

    fn open_file(path: &Path, model_fingerprint: &str) -> Result<Self> {
        let header = Header { lafn_unedited_answers: FORMAT_VERSION, model_fingerprint: model_fingerprint.into() };
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.into()),
        };
        let mut lines = text.lines();
        let readable =
            lines.next().and_then(|line| serde_json::from_str::<Header>(line).ok()).as_ref() == Some(&header);
        let mut kept = HashMap::new();
        if readable {
            let mut damaged = 0;
            for line in lines {
                match serde_json::from_str::<Kept>(line) {
                    Ok(answer) => {
                        kept.insert(answer.key.clone(), answer);
                    }
                    Err(_) => damaged += 1,
                }
            }
            if damaged > 0 {
                log::warn!("{}: {damaged} damaged lines skipped (those answers are computed again)", path.display());
            }
        } else {
            if !text.is_empty() {
                log::warn!("{} is not a file of this lafn's kept answers: it is started anew", path.display());
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            storage::write_atomic(path, (serde_json::to_string(&header)? + "\n").as_bytes())?;
        }
        let mut file = OpenOptions::new().append(true).open(path)?;
        // A last line cut short must not swallow the next one appended.
        if readable && !text.ends_with('\n') {
            file.write_all(b"\n")?;
        }
        Ok(Self { kept, file: Some(KeptFile { path: path.to_path_buf(), header, file }), checked: false })
    }

    /// The unedited answers to `questions` in `scoring`'s modes: kept ones reused, the others
    /// computed by `compute` (which answers the questions it is given, in order) and kept.
    pub fn answers(
        &mut self,
        questions: &[Question],
        scoring: Scoring,
        frame: PromptFrame,
        compute: &mut dyn FnMut(&[Question]) -> Result<Vec<Answer>>,
    ) -> Result<Vec<Answer>> {
        let mut answers: Vec<Option<Answer>> = questions.iter().map(|q| self.reused(q, scoring, frame)).collect();
        if !self.checked {
            if let Some(i) = answers.iter().position(Option::is_some) {
                self.checked = true;
                let fresh = compute(std::slice::from_ref(&questions[i]))?.pop();
                if fresh.as_ref() != answers[i].as_ref() {
                    log::warn!(
                        "the kept unedited answers differ from this lafn's (was the runtime changed?): all are computed anew"
                    );
                    self.forget_all();
                    answers.iter_mut().for_each(|a| *a = None);
                }
            }
        }
        let missing: Vec<usize> = (0..questions.len()).filter(|&i| answers[i].is_none()).collect();
        if !missing.is_empty() {
            let asked: Vec<Question> = missing.iter().map(|&i| questions[i].clone()).collect();
            let computed = compute(&asked)?;
            for (&i, answer) in missing.iter().zip(computed) {
                self.keep(&questions[i], frame, &answer);
                answers[i] = Some(answer);
            }
        }
        Ok(answers.into_iter().map(|a| a.expect("every missing answer was computed")).collect())
    }

    /// The kept answer to `question` in every mode `scoring` asks for, if there is one.
    fn reused(&self, question: &Question, scoring: Scoring, frame: PromptFrame) -> Option<Answer> {
        let mut answer = Answer::default();
        if scoring.teacher_forced() {
            answer.predicted = Some(self.kept.get(&key(TEACHER_FORCED, frame, question))?.predicted.clone()?);
        }
        if scoring.generate() {
            answer.generated = Some(self.kept.get(&key(GENERATED, frame, question))?.generated.clone()?);
        }
        Some(answer)
    }

    fn keep(&mut self, question: &Question, frame: PromptFrame, answer: &Answer) {
        let modes = [(TEACHER_FORCED, answer.predicted.clone(), None), (GENERATED, None, answer.generated.clone())];
        for (mode, predicted, generated) in modes {
            if predicted.is_none() && generated.is_none() {
                continue;
            }
            let kept = Kept { key: key(mode, frame, question), predicted, generated };
            self.append(&kept);
            self.kept.insert(kept.key.clone(), kept);
        }
    }

    /// Appends one answer to the file; on a write error the file is left alone from then on.
    fn append(&mut self, kept: &Kept) {
        let Some(file) = &mut self.file else { return };
        let line = serde_json::to_string(kept).expect("answers serialize") + "\n";
        if let Err(e) = file.file.write_all(line.as_bytes()) {
            log::warn!("{}: {e}: the unedited answers of this run are not kept", file.path.display());
            self.file = None;
        }
    }

    /// Drops every kept answer, in memory and on disk. A file that cannot be started anew is left
    /// alone (its stale answers fail the check again next run) and this run keeps answers in memory.
    fn forget_all(&mut self) {
        self.kept.clear();
        let Some(kept) = &mut self.file else { return };
        let restarted = serde_json::to_string(&kept.header)
            .map_err(color_eyre::Report::from)
            .and_then(|header| storage::write_atomic(&kept.path, (header + "\n").as_bytes()))
            .and_then(|()| Ok(OpenOptions::new().append(true).open(&kept.path)?));
        match restarted {
            Ok(file) => kept.file = file,
            Err(e) => {
                log::warn!("{}: {e:#}: the unedited answers of this run are not kept", kept.path.display());
                self.file = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Metric;

    fn question(prompt: &str) -> Question {
        Question {
            lang: "en".into(),
            metric: Metric::Locality,
            prompt: prompt.into(),
            answer: "Paris".into(),
            new_target: "Rome".into(),
        }
    }

    /// A stand-in for the model: answers derived from the prompt, counting the questions computed.
    fn answerer(calls: &mut usize, salt: u32) -> impl FnMut(&[Question]) -> Result<Vec<Answer>> + '_ {
        move |qs: &[Question]| {
            *calls += qs.len();
            Ok(qs
                .iter()
                .map(|q| Answer {
                    predicted: Some(vec![q.prompt.len() as u32 + salt]),
                    generated: Some((format!("{} {salt}", q.prompt), vec![salt])),
                    ..Answer::default()
                })
                .collect())
        }
    }

    #[test]
    fn a_second_run_reuses_the_answers_after_checking_one() {
        let dir = tempfile::tempdir().unwrap();
        let qs = [question("a?"), question("bb?"), question("a?")];
        let mut calls = 0;
        let first = UneditedAnswers::open(dir.path(), "m")
            .answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 0))
            .unwrap();
        assert_eq!(calls, 3);
        let mut calls = 0;
        let mut store = UneditedAnswers::open(dir.path(), "m");
        let second = store.answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 0)).unwrap();
        assert_eq!(second, first);
        assert_eq!(calls, 1, "only the check is computed");
        // A mode or frame not kept yet is computed.
        let mut calls = 0;
        store.answers(&qs[..1], Scoring::Generate, PromptFrame::Raw, &mut answerer(&mut calls, 0)).unwrap();
        assert_eq!(calls, 1);
        // The expected answer's length bounds a generated answer's: another one is another answer.
        let mut calls = 0;
        let longer = Question { answer: "Princess Marie Louise of Schwarzburg".into(), ..question("a?") };
        store.answers(&[longer], Scoring::Generate, PromptFrame::Auto, &mut answerer(&mut calls, 0)).unwrap();
        assert_eq!(calls, 1);
        // Another model's answers are not this one's.
        let mut calls = 0;
        UneditedAnswers::open(dir.path(), "other")
            .answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 0))
            .unwrap();
        assert_eq!(calls, 3);
    }

    #[test]
    fn answers_that_no_longer_match_the_runtime_are_all_computed_anew() {
        let dir = tempfile::tempdir().unwrap();
        let qs = [question("a?"), question("bb?")];
        let mut calls = 0;
        UneditedAnswers::open(dir.path(), "m")
            .answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 0))
            .unwrap();
        let mut calls = 0;
        let changed = UneditedAnswers::open(dir.path(), "m")
            .answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 7))
            .unwrap();
        assert_eq!(changed[1].generated.as_ref().unwrap().1, vec![7], "a stale answer was reused");
        assert_eq!(calls, 1 + 2);
        // And the file now holds the new answers only.
        let mut calls = 0;
        let again = UneditedAnswers::open(dir.path(), "m")
            .answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 7))
            .unwrap();
        assert_eq!((again, calls), (changed, 1));
    }

    #[test]
    fn stale_answers_that_cannot_be_dropped_from_disk_do_not_fail_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        let qs = [question("a?"), question("bb?")];
        let mut calls = 0;
        UneditedAnswers::open(&kept, "m")
            .answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 0))
            .unwrap();
        let mut store = UneditedAnswers::open(&kept, "m");
        // The directory goes away under the run (a file in its place: not even root can write there).
        std::fs::remove_dir_all(&kept).unwrap();
        std::fs::write(&kept, b"").unwrap();
        let mut calls = 0;
        let answers = store.answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 7)).unwrap();
        assert_eq!(answers[1].generated.as_ref().unwrap().1, vec![7], "a stale answer was reused");
        assert_eq!(calls, 1 + 2);
        // From then on the answers are kept in memory.
        let mut calls = 0;
        store.answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 7)).unwrap();
        assert_eq!(calls, 0);
    }

    #[test]
    fn a_damaged_or_foreign_file_costs_answers_never_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let qs = [question("a?"), question("bb?"), question("ccc?")];
        let mut calls = 0;
        UneditedAnswers::open(dir.path(), "m")
            .answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 0))
            .unwrap();
        let path = dir.path().join("m.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        // A line damaged in the middle, and the last cut short.
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines[2] = "{not json".into();
        let cut = lines.join("\n");
        std::fs::write(&path, &cut[..cut.len() - 5]).unwrap();
        let mut calls = 0;
        let mut store = UneditedAnswers::open(dir.path(), "m");
        let answers = store.answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 0)).unwrap();
        assert_eq!(answers.len(), 3);
        assert_eq!(calls, 1 + 2, "the check, and the two questions whose lines were damaged");
        drop(store);
        let mut calls = 0;
        UneditedAnswers::open(dir.path(), "m")
            .answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 0))
            .unwrap();
        assert_eq!(calls, 1, "the answers appended after the cut line were readable");
        // Not a file of answers at all: started anew.
        std::fs::write(&path, b"\xff\x00garbage").unwrap();
        let mut calls = 0;
        UneditedAnswers::open(dir.path(), "m")
            .answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 0))
            .unwrap();
        assert_eq!(calls, 3);
        // A directory that cannot be made: kept in memory.
        let blocked = dir.path().join("m.jsonl").join("sub");
        let mut calls = 0;
        let mut store = UneditedAnswers::open(&blocked, "m");
        store.answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 0)).unwrap();
        store.answers(&qs, Scoring::Both, PromptFrame::Auto, &mut answerer(&mut calls, 0)).unwrap();
        assert_eq!(calls, 3);
    }
}
