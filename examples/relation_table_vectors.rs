//! The scope encoder's vectors (residual space, before any projection) of the relation table's
//! wordings (`assets/scope/relations.toml`), labelled by relation, for refining a model's relation
//! projection (`results/scripts/refine_scope_projection.py`).
//!
//!     cargo run --release --example relation_table_vectors -- OUT_PREFIX
//!
//! Writes OUT_PREFIX.f32 (rows of `hidden` little-endian f32), OUT_PREFIX.jsonl (one label per row:
//! relation, text) and OUT_PREFIX.center.f32 (the encoder's center, which identifies the model).
//! `LAFN_MODEL` names another model than the default (a built-in name or a path); `LAFN_WEIGHTS=dense`
//! reads them with the dense weights.

mod common;

use std::io::Write;

use color_eyre::eyre::eyre;
use lafn::method::relation_table;
use lafn::method::scope::QuestionEncoder;
use lafn::method::MethodSettings;

/// Stands for the subject in the wordings; masked as a question's subject is.
const SUBJECT: &str = "Marie Curie";

fn main() -> lafn::Result<()> {
    let [out] = &std::env::args().skip(1).collect::<Vec<_>>()[..] else {
        return Err(eyre!("usage: relation_table_vectors OUT_PREFIX"));
    };
    let loaded = common::load_model(common::weight_mode()?)?;
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let encoder = QuestionEncoder::new(model, tokenizer, &MethodSettings::default().scope)?;
    common::write_center(&encoder, out)?;
    let mut vectors = std::io::BufWriter::new(std::fs::File::create(format!("{out}.f32"))?);
    let mut labels = std::io::BufWriter::new(std::fs::File::create(format!("{out}.jsonl"))?);
    for relation in relation_table::relations() {
        for question in &relation.questions {
            let vector = encoder.encode(model, tokenizer, &question.replace("{}", SUBJECT), &[SUBJECT.to_string()])?;
            for v in vector.to_vec1::<f32>()? {
                vectors.write_all(&v.to_le_bytes())?;
            }
            writeln!(labels, "{}", serde_json::json!({"relation": relation.name, "text": question}))?;
        }
    }
    Ok(())
}
