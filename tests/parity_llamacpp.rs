//! Parity of our forward pass with an exact float64 reference and with llama.cpp on real models.
//!
//! llama.cpp rounds K/V and attention weights to f16 and activations to 8 bits; on this small model
//! that moves logits by up to ~1.5, which flips near-ties. So: our dense pass must equal the exact
//! float64 computation (tests/fixtures/gemma3_numpy_reference.py), and must match llama.cpp wherever
//! the exact computation itself agrees with llama.cpp.

mod common;

use candle_core::{Device, Tensor};
use lafn::runtime::{GenerateOptions, GenerationDeltas, Hooks, LoadedModel, Model, Sampling, WeightMode};
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
    #[serde(default)]
    greedy_16: String,
    #[serde(default)]
    greedy_8_ids: Vec<u32>,
    /// llama.cpp's own greedy tokens (our fixtures; ../shared/reference has only the text).
    #[serde(default)]
    greedy_16_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct TopToken {
    id: u32,
    logit: f64,
}

fn reference(file: &str) -> Reference {
    read_reference(&format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR")))
}

fn read_reference(path: &str) -> Reference {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Our gemma3 fixture adds llama.cpp's greedy ids to ../shared/reference's file; everything else in it
/// must be that file's.
#[test]
fn gemma3_fixture_is_the_shared_reference() {
    let fixture = reference("gemma3-270m-q4km.llamacpp.json");
    let Some(path) = common::shared_file("reference/gemma3-270m-q4km.llamacpp.json") else { return };
    let shared = read_reference(&path.to_string_lossy());
    assert_eq!(fixture.cases.len(), shared.cases.len());
    for (ours, theirs) in fixture.cases.iter().zip(&shared.cases) {
        assert_eq!(ours.prompt, theirs.prompt);
        assert_eq!(ours.prompt_token_ids, theirs.prompt_token_ids);
        assert_eq!(ours.greedy_16, theirs.greedy_16);
        let top = |case: &Case| case.next_token_top5.iter().map(|t| (t.id, t.logit)).collect::<Vec<_>>();
        assert_eq!(top(ours), top(theirs), "top 5 after {:?}", ours.prompt);
        assert_eq!(ours.greedy_16_ids.len(), 16);
    }
}

fn next_token_logits(model: &Model, ids: &[u32]) -> Vec<f32> {
    let input = Tensor::new(ids, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let hidden = model.forward(&input, None, Hooks::default()).unwrap().hidden.unwrap();
    let last = hidden.get(0).unwrap().get(ids.len() - 1).unwrap().unsqueeze(0).unwrap();
    model.logits(&last).unwrap().squeeze(0).unwrap().to_vec1().unwrap()
}

fn argmax(values: &[f32]) -> u32 {
    (0..values.len()).max_by(|&a, &b| values[a].total_cmp(&values[b])).unwrap() as u32
}

fn greedy(model: &Model, ids: &[u32], tokens: usize) -> Vec<u32> {
    let options = GenerateOptions { max_new_tokens: tokens, sampling: Sampling::Greedy };
    model.generate(ids, GenerationDeltas::NONE, &options, &[], &mut |_| true).unwrap()
}

#[test]
fn gemma3_dense_equals_float64_reference() {
    let loaded = common::default_quantized();
    let dense = common::default_dense();
    for case in reference("gemma3-270m-numpy-f64.json").cases {
        let ids = loaded.tokenizer.encode_prompt(&case.prompt).unwrap();
        assert_eq!(ids, case.prompt_token_ids, "prompt ids of {:?}", case.prompt);
        let logits = next_token_logits(dense, &ids);
        for top in &case.next_token_top5 {
            let ours = logits[top.id as usize] as f64;
            assert!(
                (ours - top.logit).abs() < 0.02,
                "{:?}: logit of {} is {ours}, exact {}",
                case.prompt,
                top.id,
                top.logit
            );
        }
        assert_eq!(greedy(dense, &ids, 8), case.greedy_8_ids, "greedy ids after {:?}", case.prompt);
    }
}

/// Checks one weight mode against llama.cpp, where the exact computation agrees with llama.cpp;
/// returns the greedy continuations that differ from llama.cpp's in their first 8 tokens.
fn check_against_llamacpp(
    loaded: &LoadedModel,
    model: &Model,
    llamacpp: &Reference,
    exact: Option<&Reference>,
    mode: &str,
) -> Vec<String> {
    let tokenizer = &loaded.tokenizer;
    let mut greedy_mismatches = Vec::new();
    for (i, case) in llamacpp.cases.iter().enumerate() {
        let ids = tokenizer.encode_prompt(&case.prompt).unwrap();
        assert_eq!(ids, case.prompt_token_ids, "prompt ids of {:?}", case.prompt);
        let exact_case = exact.map(|e| &e.cases[i]);
        let llama_top = case.next_token_top5[0].id;
        let ours = argmax(&next_token_logits(model, &ids));
        if exact_case.is_none_or(|e| e.next_token_top5[0].id == llama_top) {
            assert_eq!(ours, llama_top, "{mode}: top-1 after {:?}", case.prompt);
        } else {
            // A near-tie that llama.cpp's rounding decides: stay among its top candidates.
            assert!(
                case.next_token_top5.iter().any(|t| t.id == ours),
                "{mode}: top-1 {ours} after {:?} is not in llama.cpp's top 5",
                case.prompt
            );
        }
        let exact_agrees =
            exact_case.is_none_or(|e| case.greedy_16.starts_with(&tokenizer.decode(&e.greedy_8_ids).unwrap()));
        let ours8 = tokenizer.decode(&greedy(model, &ids, 8)).unwrap();
        if !exact_agrees {
            eprintln!("{mode}: {:?}: exact computation and llama.cpp differ; ours {ours8:?}", case.prompt);
        } else if !case.greedy_16.starts_with(&ours8) {
            greedy_mismatches.push(format!("{:?}: ours {ours8:?}, llama.cpp {:?}", case.prompt, case.greedy_16));
        }
    }
    eprintln!("{mode}: greedy mismatches: {greedy_mismatches:#?}");
    greedy_mismatches
}

#[test]
fn gemma3_matches_llamacpp_in_both_modes() {
    let loaded = common::default_quantized();
    let llamacpp = reference("gemma3-270m-q4km.llamacpp.json");
    let exact = reference("gemma3-270m-numpy-f64.json");
    let quantized = check_against_llamacpp(loaded, &loaded.model, &llamacpp, Some(&exact), "quantized");
    // Our 8-bit activation rounding is llama.cpp's, but its f16 attention and GELU table are not:
    // allow two near-ties (measured: after 日本の首都は our cached decode writes 2019 where llama.cpp,
    // and our own teacher-forced pass below, write 2018; after 法国的首都是 our 4th token is 0.09
    // logits above llama.cpp's since the GELU's tanh is vectorized, whose bits differ from libm's).
    assert!(quantized.len() <= 2, "quantized greedy mismatches: {quantized:#?}");
    let dense = check_against_llamacpp(loaded, common::default_dense(), &llamacpp, Some(&exact), "dense");
    assert!(dense.is_empty(), "dense greedy mismatches: {dense:#?}");
    // Teacher forced on llama.cpp's own greedy ids (the fixture is ../shared/reference's file regenerated
    // here with greedy_16_ids; text and logits came out identical), or on the exact computation's where
    // it departs from llama.cpp: measured worst gaps 0.11 quantized, 0.00 dense.
    assert_reference_continuations_are_near_ties(&loaded.model, &llamacpp, Some(&exact), "quantized", 0.75);
    assert_reference_continuations_are_near_ties(common::default_dense(), &llamacpp, Some(&exact), "dense", 0.75);
}

/// How far a reference continuation falls below our best logit at each of its steps, teacher forced: 0
/// where we pick the same token. Greedy text alone cannot tell a near-tie that rounding decides from a
/// wrong forward pass; this can, and it does not depend on which CPU kernels run.
fn continuation_gaps(model: &Model, prompt: &[u32], continuation: &[u32]) -> Vec<f32> {
    let ids = [prompt, continuation].concat();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let hidden = model.forward(&input, None, Hooks::default()).unwrap().hidden.unwrap().squeeze(0).unwrap();
    let positions = hidden.narrow(0, prompt.len() - 1, continuation.len()).unwrap();
    let logits: Vec<Vec<f32>> = model.logits(&positions).unwrap().to_vec2().unwrap();
    logits.iter().zip(continuation).map(|(row, &theirs)| row[argmax(row) as usize] - row[theirs as usize]).collect()
}

/// Asserts that wherever the reference's greedy continuation (first 8 tokens) is not our argmax, it is
/// within `tolerance` logits of it: a near-tie for us too. The reference is llama.cpp's continuation,
/// or the exact computation's where that departs from llama.cpp's (llama.cpp's f16 attention decides
/// those). A wrong rotary embedding, norm or cache position gives gaps of several logits.
fn assert_reference_continuations_are_near_ties(
    model: &Model,
    llamacpp: &Reference,
    exact: Option<&Reference>,
    mode: &str,
    tolerance: f32,
) {
    for (i, case) in llamacpp.cases.iter().enumerate() {
        assert!(case.greedy_16_ids.len() >= 8, "the fixture has llama.cpp's greedy ids of {:?}", case.prompt);
        let (source, continuation) = match exact.map(|e| &e.cases[i].greedy_8_ids) {
            Some(theirs) if !case.greedy_16_ids.starts_with(theirs) => ("the exact computation", &theirs[..]),
            _ => ("llama.cpp", &case.greedy_16_ids[..8]),
        };
        let gaps = continuation_gaps(model, &case.prompt_token_ids, continuation);
        eprintln!("{mode}: {:?}: gaps to {source}'s continuation {gaps:.2?}", case.prompt);
        let worst = gaps.iter().copied().fold(0.0, f32::max);
        assert!(worst <= tolerance, "{mode}: {source}'s continuation of {:?} is {worst} below ours", case.prompt);
    }
}

#[test]
fn smollm2_matches_llamacpp_in_both_modes() {
    let loaded = LoadedModel::load(&common::model_files("smollm2-135m"), WeightMode::Quantized, &Device::Cpu).unwrap();
    let llamacpp = reference("smollm2-135m-q4_1.llamacpp.json");
    let dense = loaded.load_weights(WeightMode::Dense).unwrap();
    // Prompt ids and top-1 next token must be llama.cpp's exactly; greedy text is only reported, since
    // near-ties after the first sentence go either way with the rounding of the CPU kernels.
    check_against_llamacpp(&loaded, &dense, &llamacpp, None, "dense");
    check_against_llamacpp(&loaded, &loaded.model, &llamacpp, None, "quantized");
    // Measured gaps: dense 0.24 at most; quantized 0.10 with the tiled kernel, which reads Q4_1
    // exactly (0.35 where candle's kernels need it re-encoded as Q8_0, see runtime::weights).
    assert_reference_continuations_are_near_ties(&dense, &llamacpp, None, "dense", 0.75);
    assert_reference_continuations_are_near_ties(&loaded.model, &llamacpp, None, "quantized", 0.75);
}
