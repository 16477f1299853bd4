//! Parity with llama.cpp on real models: same prompt tokens, same top-1 next token, same greedy text.

mod common;

use candle_core::{Device, Tensor};
use lafn::runtime::{GenerateOptions, Hooks, LoadedModel, Model, Sampling, WeightMode};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    prompt: String,
    prompt_token_ids: Vec<u32>,
    next_token_top5: Vec<TopToken>,
    greedy_16: String,
}

#[derive(Deserialize)]
struct TopToken {
    id: u32,
}

fn reference(file: &str) -> Reference {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Checks every reference case against one weight mode; returns how many greedy texts matched in full.
fn check_parity(loaded: &LoadedModel, model: &Model, reference: &Reference, mode: &str) -> usize {
    let tokenizer = &loaded.tokenizer;
    let mut full_matches = 0;
    for case in &reference.cases {
        let ids = tokenizer.encode_prompt(&case.prompt).unwrap();
        assert_eq!(ids, case.prompt_token_ids, "prompt ids of {:?}", case.prompt);

        let input = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let hidden = model.forward(&input, None, Hooks::default()).unwrap().hidden.unwrap();
        let last = hidden.get(0).unwrap().get(ids.len() - 1).unwrap().unsqueeze(0).unwrap();
        let top1 = model.logits(&last).unwrap().argmax(1).unwrap().to_vec1::<u32>().unwrap()[0];
        assert_eq!(top1, case.next_token_top5[0].id, "{mode}: top-1 after {:?}", case.prompt);

        let options = GenerateOptions {
            max_new_tokens: 16,
            sampling: Sampling::Greedy,
        };
        let generated = model.generate(&ids, &[], &options, &[], &mut |_| true).unwrap();
        let first8 = tokenizer.decode(&generated[..8]).unwrap();
        assert!(
            case.greedy_16.starts_with(&first8),
            "{mode}: greedy text of {:?}: ours {:?}, llama.cpp {:?}",
            case.prompt,
            tokenizer.decode(&generated).unwrap(),
            case.greedy_16
        );
        full_matches += usize::from(tokenizer.decode(&generated).unwrap() == case.greedy_16);
    }
    full_matches
}

#[test]
fn gemma3_quantized_matches_llamacpp() {
    let loaded = common::default_quantized();
    let reference = reference("gemma3-270m-q4km.llamacpp.json");
    let full = check_parity(loaded, &loaded.model, &reference, "quantized");
    // Same quantized weights as llama.cpp: all 16 tokens should agree on nearly every case.
    assert!(full + 1 >= reference.cases.len(), "only {full} of {} full matches", reference.cases.len());
}

#[test]
fn gemma3_dense_matches_llamacpp() {
    let loaded = common::default_quantized();
    check_parity(loaded, common::default_dense(), &reference("gemma3-270m-q4km.llamacpp.json"), "dense");
}

#[test]
fn smollm2_matches_llamacpp_in_both_modes() {
    let loaded = LoadedModel::load(&common::model_files("smollm2-135m"), WeightMode::Quantized).unwrap();
    let reference = reference("smollm2-135m-q4_1.llamacpp.json");
    check_parity(&loaded, &loaded.model, &reference, "quantized");
    let dense = loaded.load_weights(WeightMode::Dense).unwrap();
    check_parity(&loaded, &dense, &reference, "dense");
}
