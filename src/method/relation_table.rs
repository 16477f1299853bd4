//! The relation table (`assets/scope/relations.toml`): 65 common relations between a subject and an
//! object, each worded several ways in English. The default model's relation directions were fitted
//! on it offline (`examples/relation_table_vectors.rs`), and the scope gate reads it at run time: a
//! query asking one of the relations an edit does not ask ("Who published X?" for an edit of "Who wrote
//! X?", "Who is the CEO of X?" for "Who founded X?") is stopped however near the edit's own questions
//! it lies (see `QuestionEncoder::prepare`).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use color_eyre::eyre::{bail, WrapErr};
use serde::Deserialize;

use crate::Result;

/// One relation and its wordings; `{}` stands for the subject.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    pub name: String,
    pub questions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    relation: Vec<Relation>,
}

/// The table, read and checked once.
pub fn relations() -> &'static [Relation] {
    static TABLE: OnceLock<Vec<Relation>> = OnceLock::new();
    TABLE.get_or_init(|| {
        parse(include_str!("../../assets/scope/relations.toml")).expect("the shipped relation table is valid")
    })
}

/// Every wording with the subject written as `subject`, and the index of its relation in [`relations`].
pub fn wordings(subject: &str) -> (Vec<String>, Vec<usize>) {
    (relations().iter().enumerate())
        .flat_map(|(r, relation)| relation.questions.iter().map(move |q| (q.replace("{}", subject), r)))
        .unzip()
}

/// Every relation named once, worded at least twice, each wording with one subject and under one
/// relation only (it would count for two).
fn parse(text: &str) -> Result<Vec<Relation>> {
    let table: Table = toml::from_str(text).wrap_err("relations.toml")?;
    let (mut names, mut questions) = (BTreeSet::new(), BTreeSet::new());
    for relation in &table.relation {
        if !names.insert(&relation.name) || relation.questions.len() < 2 {
            bail!("relation `{}` is listed twice or has fewer than two wordings", relation.name);
        }
        for question in &relation.questions {
            if question.matches("{}").count() != 1 || !questions.insert(question) {
                bail!("`{question}` ({}) lacks one `{{}}` or is listed twice", relation.name);
            }
        }
    }
    Ok(table.relation)
}

#[cfg(test)]
mod tests {
    use super::{parse, relations, wordings};

    #[test]
    fn the_shipped_table_is_read_and_every_wording_has_its_relation() {
        assert!(relations().len() >= 60);
        let (texts, relation_of) = wordings("X");
        assert_eq!(texts.len(), relation_of.len());
        assert!(texts.iter().all(|t| t.contains('X') && !t.contains("{}")));
        let author = relations().iter().position(|r| r.name == "author").unwrap();
        assert!(texts.iter().zip(&relation_of).any(|(t, &r)| r == author && t == "Who wrote X?"));
    }

    #[test]
    fn a_table_with_a_wording_listed_twice_or_without_a_subject_is_refused() {
        let twice = "[[relation]]\nname = \"a\"\nquestions = [\"Who {}?\", \"Who {}?\"]\n";
        assert!(parse(twice).is_err());
        let no_subject = "[[relation]]\nname = \"a\"\nquestions = [\"Who?\", \"Who {}?\"]\n";
        assert!(parse(no_subject).is_err());
        let one_wording = "[[relation]]\nname = \"a\"\nquestions = [\"Who {}?\"]\n";
        assert!(parse(one_wording).is_err());
    }
}
