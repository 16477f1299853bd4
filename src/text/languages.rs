//! The language table: every language lafn knows, with the codes datasets use for it, its names and
//! script, and the text an edit puts around its subjects and prompts (KL prompts, paraphrase frames,
//! questions under other relations). The table is `assets/languages.toml` (documented at its top),
//! compiled into the binary and parsed on first use. A code not in it still works: it gets the
//! generic templates, and a warning names it and the script its text is in.

use std::collections::{BTreeSet, HashMap};
use std::sync::{LazyLock, Mutex};

use serde::Deserialize;

use super::scripts::Script;

/// One language of the table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// ISO 639-1 code.
    pub code: String,
    /// Other codes datasets write for the language (MzsRE's `cz` for Czech).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Name in English.
    pub english: String,
    /// Name in the language itself.
    pub native: String,
    pub script: Script,
    pub templates: Templates,
}

/// Text put around a subject or a prompt in one language; `{}` stands for the subject.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    /// Prompts about the subject under other relations ("{} is a"), whose next-token distribution the
    /// edit's KL term keeps.
    pub kl: Vec<String>,
    /// Paraphrase frames: "Question:", "Answer:", "Tell me:".
    pub question: String,
    pub answer: String,
    pub tell: String,
    /// Questions about the subject under other relations, whose answers the edit keeps.
    pub other_questions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    generic: Templates,
    /// Benchmark name -> its languages, spelled as its files spell them.
    datasets: HashMap<String, Vec<String>>,
    language: Vec<Language>,
}

struct Table {
    file: TableFile,
    /// Lowercase code or alias -> index in `file.language`.
    by_code: HashMap<String, usize>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let file: TableFile =
        toml::from_str(include_str!("../../assets/languages.toml")).expect("assets/languages.toml is valid");
    let mut by_code = HashMap::new();
    for (index, language) in file.language.iter().enumerate() {
        for code in std::iter::once(&language.code).chain(&language.aliases) {
            by_code.insert(code.to_lowercase(), index);
        }
    }
    Table { file, by_code }
});

/// How many other-relation questions each language has (the same in every language, the generic
/// templates included): the i-th of every language asks the same relation.
pub fn other_question_count() -> usize {
    TABLE.file.generic.other_questions.len()
}

/// Every language of the table, by code.
pub fn all() -> &'static [Language] {
    &TABLE.file.language
}

/// The language with this code or alias, in any case; a regional code ("pt-BR", "zh_CN") falls back
/// to its language.
pub fn find(code: &str) -> Option<&'static Language> {
    let code = code.to_lowercase();
    let base = code.split(['-', '_']).next().unwrap_or_default();
    let index = TABLE.by_code.get(&code).or_else(|| TABLE.by_code.get(base))?;
    Some(&TABLE.file.language[*index])
}

/// The templates of the language `code`. A code not in the table gets the generic ones (English
/// questions, "Q:"/"A:" frames), and a warning, once per code, that names it and the script of
/// `sample` (text in that language).
pub fn templates(code: &str, sample: &str) -> &'static Templates {
    if let Some(language) = find(code) {
        return &language.templates;
    }
    static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first_time = WARNED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(code.to_string());
    if first_time {
        let script = Script::detect(sample).map_or("an unknown".to_string(), |s| format!("{s:?}"));
        log::warn!(
            "language `{code}` is not in the language table (assets/languages.toml): its text is in {script} \
             script; generic templates (English questions, Q:/A: frames) are used"
        );
    }
    &TABLE.file.generic
}

/// The languages of a benchmark (`mzsre`, `bizsre`, `bmike53`), spelled as its files spell them; empty for a
/// benchmark the table does not list.
pub fn dataset_languages(dataset: &str) -> &'static [String] {
    TABLE.file.datasets.get(dataset).map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_template(templates: &Templates) -> impl Iterator<Item = &String> {
        templates.kl.iter().chain(&templates.other_questions)
    }

    #[test]
    fn the_table_covers_bmike53_and_is_consistent() {
        assert_eq!(dataset_languages("bmike53").len(), 53);
        for code in dataset_languages("bmike53") {
            assert_eq!(find(code).map(|l| l.code.as_str()), Some(code.as_str()));
        }
        let mut codes = BTreeSet::new();
        for language in all() {
            for code in std::iter::once(&language.code).chain(&language.aliases) {
                assert_eq!(code, &code.to_lowercase());
                assert!(codes.insert(code.clone()), "`{code}` is listed twice");
            }
            let templates = &language.templates;
            assert!(!templates.kl.is_empty() && !templates.question.is_empty(), "{}", language.code);
            assert_eq!(templates.other_questions.len(), TABLE.file.generic.other_questions.len(), "{}", language.code);
            for template in every_template(templates) {
                assert_eq!(template.matches("{}").count(), 1, "{}: {template}", language.code);
            }
            // The native name is written in the language's script (Japanese writes its name in kanji).
            let native_script = Script::detect(&language.native);
            let japanese_in_kanji = language.script == Script::Japanese && native_script == Some(Script::Han);
            assert!(native_script == Some(language.script) || japanese_in_kanji, "{}", language.code);
        }
        assert!(every_template(&TABLE.file.generic).all(|t| t.matches("{}").count() == 1));
    }

    #[test]
    fn codes_aliases_and_regional_codes_are_found() {
        assert_eq!(find("cz").unwrap().code, "cs");
        assert_eq!(find("du").unwrap().code, "nl");
        assert_eq!(find("pt-BR").unwrap().code, "pt");
        assert_eq!(find("ZH_cn").unwrap().code, "zh");
        assert_eq!(find("ja").unwrap().script, Script::Japanese);
        assert!(find("xx").is_none());
    }

    #[test]
    fn a_missing_language_gets_the_generic_templates() {
        let templates = templates("yo", "Ta ni Ọba Adeyemi?");
        assert_eq!(templates.question, "Q:");
        assert_eq!(templates.kl, ["{}"]);
        assert!(std::ptr::eq(templates, super::templates("yo", "")), "one generic table");
    }

    #[test]
    fn every_benchmark_language_is_in_the_table() {
        for dataset in ["mzsre", "bizsre", "bmike53"] {
            assert!(!dataset_languages(dataset).is_empty());
            for code in dataset_languages(dataset) {
                assert!(find(code).is_some(), "{dataset}: {code}");
            }
        }
        assert!(dataset_languages("unknown").is_empty());
    }
}
