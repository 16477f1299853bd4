//! Per-record results, their aggregation into per-language tables, and the report (JSON and markdown).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::dataset::LanguageCoverage;
use super::methods::{EvalMethod, LangResult};
use super::metrics::{Metric, Score};
use super::runner::EvalConfig;
use super::shard::Shard;

/// Seconds spent on one record by one method, by stage.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TimeBreakdown {
    pub paraphrases: f64,
    pub locate: f64,
    pub optimize: f64,
    pub scoring: f64,
}

impl TimeBreakdown {
    pub fn total(&self) -> f64 {
        self.paraphrases + self.locate + self.optimize + self.scoring
    }

    fn add(&mut self, other: &TimeBreakdown) {
        self.paraphrases += other.paraphrases;
        self.locate += other.locate;
        self.optimize += other.optimize;
        self.scoring += other.scoring;
    }
}

/// One method's results on one record: a line of the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordResult {
    pub method: EvalMethod,
    /// Position of the record in the data file, from 0.
    pub record: usize,
    pub langs: BTreeMap<String, LangResult>,
    pub seconds: TimeBreakdown,
}

/// Scores x100 per language (mean over records) and averaged over languages.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Table {
    pub per_lang: BTreeMap<String, BTreeMap<Metric, Score>>,
    pub average: BTreeMap<Metric, Score>,
}

/// One method's scores: teacher forced and generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodReport {
    pub method: EvalMethod,
    pub records: usize,
    pub teacher_forced: Table,
    pub generated: Table,
    /// Share (x100) of generated answers written in their question's script, per language and "avg".
    // Default: reports written before the field existed still load.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub in_script: BTreeMap<String, f64>,
    /// Share of questions (x100) on which retrieval fired, per metric (methods with retrieval only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retrieval_fired: BTreeMap<Metric, f64>,
    /// Seconds summed over the records, by stage.
    pub seconds: TimeBreakdown,
    pub seconds_per_record: f64,
    pub records_per_minute: f64,
}

impl MethodReport {
    /// The generated or the teacher-forced scores.
    pub fn table(&self, generated: bool) -> &Table {
        if generated {
            &self.generated
        } else {
            &self.teacher_forced
        }
    }
}

/// Means of samples per (language, metric), x100.
#[derive(Default)]
struct Means<'a>(BTreeMap<(&'a str, Metric), (Score, usize)>);

impl<'a> Means<'a> {
    fn add(&mut self, lang: &'a str, metric: Metric, score: Score) {
        let (sum, n) = self.0.entry((lang, metric)).or_default();
        sum.f1 += score.f1;
        sum.em += score.em;
        *n += 1;
    }

    /// A language's score is the mean over its samples; the average is the mean over languages.
    fn table(self) -> Table {
        let mut per_lang: BTreeMap<String, BTreeMap<Metric, Score>> = BTreeMap::new();
        for ((lang, metric), (sum, n)) in self.0 {
            let mean = Score { f1: 100.0 * sum.f1 / n as f64, em: 100.0 * sum.em / n as f64 };
            per_lang.entry(lang.to_string()).or_default().insert(metric, mean);
        }
        let average = Metric::ALL
            .into_iter()
            .filter_map(|metric| {
                let scores: Vec<Score> = per_lang.values().filter_map(|m| m.get(&metric).copied()).collect();
                let n = scores.len() as f64;
                (!scores.is_empty()).then(|| {
                    let f1 = scores.iter().map(|s| s.f1).sum::<f64>() / n;
                    (metric, Score { f1, em: scores.iter().map(|s| s.em).sum::<f64>() / n })
                })
            })
            .collect();
        Table { per_lang, average }
    }
}

/// Aggregates per-record results into one report per method (in `methods` order). A language's
/// score is the mean over its questions; the average is the mean over `langs`.
pub fn aggregate(results: &[RecordResult], methods: &[EvalMethod], langs: &[String]) -> Vec<MethodReport> {
    methods
        .iter()
        .map(|&method| {
            let mut mine: Vec<&RecordResult> = results.iter().filter(|r| r.method == method).collect();
            // Sums in record order: the same results give the same report however runs were split.
            mine.sort_by_key(|r| r.record);
            let mut seconds = TimeBreakdown::default();
            let (mut forced, mut generated) = (Means::default(), Means::default());
            let mut in_script: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
            let mut fired: BTreeMap<Metric, (usize, usize)> = BTreeMap::new();
            for result in &mine {
                seconds.add(&result.seconds);
                for lang in langs {
                    for outcome in result.langs.get(lang).into_iter().flatten() {
                        if let Some(score) = outcome.teacher_forced {
                            forced.add(lang, outcome.metric, score);
                        }
                        if let Some(g) = &outcome.generated {
                            generated.add(lang, outcome.metric, g.score);
                            if outcome.metric == Metric::Specificity {
                                let stated = f64::from(u8::from(g.states_new_target));
                                generated.add(lang, Metric::SpecificityNewTarget, Score { f1: stated, em: stated });
                            }
                            let (yes, n) = in_script.entry(lang).or_default();
                            *yes += usize::from(g.in_script);
                            *n += 1;
                        }
                        if let Some(hit) = outcome.fired {
                            let (hits, n) = fired.entry(outcome.metric).or_default();
                            *hits += usize::from(hit);
                            *n += 1;
                        }
                    }
                }
            }
            let share = |(yes, n): (usize, usize)| 100.0 * yes as f64 / n as f64;
            let mut in_script: BTreeMap<String, f64> =
                in_script.into_iter().map(|(lang, counts)| (lang.to_string(), share(counts))).collect();
            if !in_script.is_empty() {
                let average = in_script.values().sum::<f64>() / in_script.len() as f64;
                in_script.insert("avg".into(), average);
            }
            let records = mine.len();
            let total = seconds.total();
            MethodReport {
                method,
                records,
                teacher_forced: forced.table(),
                generated: generated.table(),
                in_script,
                retrieval_fired: fired.into_iter().map(|(metric, counts)| (metric, share(counts))).collect(),
                seconds,
                seconds_per_record: if records == 0 { 0.0 } else { total / records as f64 },
                records_per_minute: match records > 0 && total / records as f64 >= LEAST_TIMED_SECONDS_PER_RECORD {
                    true => 60.0 * records as f64 / total,
                    false => 0.0,
                },
            }
        })
        .collect()
}

/// The model an evaluation ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub path: PathBuf,
    pub architecture: String,
    pub fingerprint: String,
}

/// Everything needed to read and reproduce an evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub dataset: String,
    pub file: PathBuf,
    pub langs: Vec<String>,
    /// Requested language -> the records (numbered from 1) that lack it; those records were evaluated
    /// in their other languages. A language no record has is not in `langs`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missing_langs: BTreeMap<String, Vec<usize>>,
    /// "standard" (one edit in the cache at a time) or "sequential" (all edits, then all scores).
    pub protocol: String,
    /// Records evaluated (the first `records` of the file).
    pub records: usize,
    /// The part of those records this run evaluated (`--shard`); `None`: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    pub methods: Vec<MethodReport>,
    pub settings: EvalConfig,
    pub model: ModelSummary,
    pub git_commit: String,
    /// Wall time of this invocation (records resumed from the state file took none of it).
    pub wall_seconds: f64,
    /// Records whose results were computed in this invocation.
    pub records_this_run: usize,
    /// Worker processes those records were spread over (`lafn eval --jobs`); 1: this process.
    #[serde(default = "one_process", skip_serializing_if = "is_one_process")]
    pub workers: usize,
}

fn one_process() -> usize {
    1
}

fn is_one_process(workers: &usize) -> bool {
    *workers == 1
}

impl EvalReport {
    /// One table per metric (methods x languages, cells "F1 / EM"), then throughput.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let records = match self.shard {
            Some(shard) => format!("shard {shard} of {} records", self.records),
            None => format!("{} records", self.records),
        };
        let _ = writeln!(
            out,
            "## {} ({records}, {} protocol, model {} `{}`, commit {})\n",
            self.dataset,
            self.protocol,
            self.model.architecture,
            self.model.fingerprint,
            short_commit(&self.git_commit)
        );
        let missing = LanguageCoverage::describe(&self.missing_langs, self.records);
        if !missing.is_empty() {
            let _ = writeln!(out, "Languages some records lack (evaluated in the records that have them):\n");
            for line in missing {
                let _ = writeln!(out, "- {line}");
            }
            let _ = writeln!(out);
        }
        let header: Vec<&str> = self.langs.iter().map(String::as_str).chain(["avg"]).collect();
        for (scoring, generated) in [("teacher forced", false), ("generated", true)] {
            for metric in Metric::ALL {
                if self.methods.iter().all(|m| !m.table(generated).average.contains_key(&metric)) {
                    continue;
                }
                let _ = writeln!(out, "### {}, {scoring} (F1 / EM)\n", metric.name());
                let _ = writeln!(out, "| method | {} |", header.join(" | "));
                let _ = writeln!(out, "|---|{}", "---:|".repeat(header.len()));
                for m in &self.methods {
                    let table = m.table(generated);
                    let cells: Vec<String> = self
                        .langs
                        .iter()
                        .map(|lang| table.per_lang.get(lang).and_then(|s| s.get(&metric)))
                        .chain([table.average.get(&metric)])
                        .map(|s| s.map_or("-".to_string(), |s| format!("{:.1} / {:.1}", s.f1, s.em)))
                        .collect();
                    let _ = writeln!(out, "| {} | {} |", m.method, cells.join(" | "));
                }
                let _ = writeln!(out);
            }
        }
        if self.methods.iter().any(|m| !m.in_script.is_empty()) {
            let _ = writeln!(out, "### Generated answers in the question's script (%)\n");
            let _ = writeln!(out, "| method | {} |", header.join(" | "));
            let _ = writeln!(out, "|---|{}", "---:|".repeat(header.len()));
            for m in &self.methods {
                let cells: Vec<String> =
                    header.iter().map(|l| m.in_script.get(*l).map_or("-".into(), |v| format!("{v:.1}"))).collect();
                let _ = writeln!(out, "| {} | {} |", m.method, cells.join(" | "));
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "### Retrieval fired (% of questions)\n");
        let _ = writeln!(out, "| method | {} |", Metric::ALL.map(Metric::name).join(" | "));
        let _ = writeln!(out, "|---|{}", "---:|".repeat(Metric::ALL.len()));
        for m in self.methods.iter().filter(|m| !m.retrieval_fired.is_empty()) {
            let cells =
                Metric::ALL.map(|metric| m.retrieval_fired.get(&metric).map_or("-".into(), |v| format!("{v:.1}")));
            let _ = writeln!(out, "| {} | {} |", m.method, cells.join(" | "));
        }
        let _ = writeln!(out, "\n### Time (seconds per record)\n");
        let _ = writeln!(out, "| method | paraphrases | locate | optimize | scoring | total | records/min |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
        for m in &self.methods {
            let per = |s: f64| if m.records == 0 { 0.0 } else { s / m.records as f64 };
            let rate = match m.records_per_minute > 0.0 {
                true => format!("{:.2}", m.records_per_minute),
                false => "-".to_string(),
            };
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                m.method,
                per(m.seconds.paraphrases),
                per(m.seconds.locate),
                per(m.seconds.optimize),
                per(m.seconds.scoring),
                m.seconds_per_record,
                rate
            );
        }
        let _ = write!(
            out,
            "\nWall time {:.0} s for {} records computed in this run",
            self.wall_seconds, self.records_this_run
        );
        if self.workers > 1 && self.wall_seconds > 0.0 {
            // The table's seconds are each record's own; records ran side by side.
            let per_minute = self.records_this_run as f64 * 60.0 / self.wall_seconds;
            let _ =
                write!(out, ", side by side in {} worker processes: {per_minute:.2} records a minute", self.workers);
        }
        let _ = writeln!(out, ".");
        out
    }
}

/// Below this a record's time is that of reading answers kept from earlier runs, not of computing them:
/// no rate is given (0, shown as "-"; it would read as thousands of records a minute).
const LEAST_TIMED_SECONDS_PER_RECORD: f64 = 0.05;

/// The first 12 hex digits of the commit, keeping a `-dirty` mark.
fn short_commit(commit: &str) -> String {
    let (sha, dirty) = commit.split_once('-').unwrap_or((commit, ""));
    let short = sha.get(..12).unwrap_or(sha);
    if dirty.is_empty() {
        short.to_string()
    } else {
        format!("{short}-{dirty}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::methods::{GeneratedOutcome, Outcome};

    fn outcome(metric: Metric, f1: f64, em: f64) -> Outcome {
        Outcome {
            metric,
            teacher_forced: Some(Score { f1, em }),
            generated: None,
            fired: None,
            scope_score: None,
            other_relations_score: None,
        }
    }

    fn result(method: EvalMethod, record: usize, scores: &[(&str, Metric, f64, f64)], seconds: f64) -> RecordResult {
        let mut langs: BTreeMap<String, LangResult> = BTreeMap::new();
        for &(lang, metric, f1, em) in scores {
            langs.entry(lang.into()).or_default().push(outcome(metric, f1, em));
        }
        RecordResult { method, record, langs, seconds: TimeBreakdown { scoring: seconds, ..Default::default() } }
    }

    #[test]
    fn short_commits_keep_the_dirty_mark() {
        assert_eq!(short_commit("d5db223003d5c828652cb003815ac960b0b67568"), "d5db223003d5");
        assert_eq!(short_commit("d5db223003d5c828652cb003815ac960b0b67568-dirty"), "d5db223003d5-dirty");
        assert_eq!(short_commit("unknown"), "unknown");
    }

    #[test]
    fn languages_average_over_records_and_the_average_over_languages() {
        use Metric::*;
        let results = vec![
            result(EvalMethod::LuLafns, 0, &[("en", Reliability, 1.0, 1.0), ("de", Reliability, 0.5, 0.0)], 2.0),
            result(EvalMethod::LuLafns, 1, &[("en", Reliability, 0.0, 0.0), ("de", Reliability, 0.5, 0.0)], 4.0),
            // Another method's and another language's results are not mixed in.
            result(EvalMethod::Unedited, 0, &[("en", Reliability, 0.0, 0.0), ("fr", Reliability, 1.0, 1.0)], 1.0),
            result(EvalMethod::LuLafns, 2, &[("en", Locality, 1.0, 1.0), ("fr", Reliability, 1.0, 1.0)], 6.0),
        ];
        let langs = vec!["en".to_string(), "de".to_string()];
        let reports = aggregate(&results, &[EvalMethod::LuLafns], &langs);
        assert_eq!(reports.len(), 1);
        let ours = &reports[0];
        assert_eq!(ours.records, 3);
        let table = &ours.teacher_forced;
        assert_eq!(table.per_lang["en"][&Reliability], Score { f1: 50.0, em: 50.0 });
        assert_eq!(table.per_lang["de"][&Reliability], Score { f1: 50.0, em: 0.0 });
        assert_eq!(table.average[&Reliability], Score { f1: 50.0, em: 25.0 });
        // Locality exists only for en: its average is en's.
        assert_eq!(table.average[&Locality], Score { f1: 100.0, em: 100.0 });
        assert!(!table.average.contains_key(&Portability) && !table.per_lang.contains_key("fr"));
        assert!(ours.generated.average.is_empty() && ours.in_script.is_empty());
        assert_eq!(ours.seconds.total(), 12.0);
        assert_eq!(ours.seconds_per_record, 4.0);
        assert_eq!(ours.records_per_minute, 15.0);
        // Answers read back from an earlier run take no time to speak of: no rate.
        let kept = vec![result(EvalMethod::Unedited, 0, &[("en", Reliability, 0.0, 0.0)], 0.004)];
        assert_eq!(aggregate(&kept, &[EvalMethod::Unedited], &langs)[0].records_per_minute, 0.0);
    }

    #[test]
    fn retrieval_firing_is_a_share_per_metric() {
        let fired = |metric, hit| Outcome { fired: Some(hit), ..outcome(metric, 1.0, 1.0) };
        let en = |outcomes: Vec<Outcome>| BTreeMap::from([("en".to_string(), outcomes)]);
        let record =
            |record, langs| RecordResult { method: EvalMethod::Icl, record, langs, seconds: TimeBreakdown::default() };
        let r = record(0, en(vec![fired(Metric::Reliability, true), fired(Metric::Locality, false)]));
        let r2 = record(1, en(vec![fired(Metric::Reliability, true), fired(Metric::Locality, true)]));
        let report = &aggregate(&[r, r2], &[EvalMethod::Icl], &["en".into()])[0];
        assert_eq!(report.retrieval_fired[&Metric::Reliability], 100.0);
        assert_eq!(report.retrieval_fired[&Metric::Locality], 50.0);
    }

    #[test]
    fn generated_specificity_counts_answers_that_state_the_new_target() {
        let generated = |metric, em, states_new_target, in_script| Outcome {
            metric,
            teacher_forced: None,
            generated: Some(GeneratedOutcome {
                score: Score { f1: em, em },
                line: String::new(),
                in_script,
                states_new_target,
            }),
            fired: None,
            scope_score: None,
            other_relations_score: None,
        };
        let langs = BTreeMap::from([(
            "de".to_string(),
            vec![
                generated(Metric::Specificity, 1.0, false, true),
                generated(Metric::Specificity, 0.0, true, true),
                generated(Metric::Specificity, 0.0, false, true),
                generated(Metric::Reliability, 1.0, true, false),
            ],
        )]);
        let result = RecordResult { method: EvalMethod::LuLafns, record: 0, langs, seconds: TimeBreakdown::default() };
        let report = &aggregate(&[result], &[EvalMethod::LuLafns], &["de".into()])[0];
        let g = &report.generated.average;
        assert!((g[&Metric::Specificity].em - 100.0 / 3.0).abs() < 1e-9);
        assert!((g[&Metric::SpecificityNewTarget].em - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(g[&Metric::Reliability].em, 100.0);
        assert_eq!(report.in_script["de"], 75.0);
        assert!(report.teacher_forced.average.is_empty());
    }
}
