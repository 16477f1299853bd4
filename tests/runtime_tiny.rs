//! Runtime behaviour on tiny random-weight models: modes agree, caching and padding are exact,
//! hooks read and edit FFN neurons, and gradients reach the update values.

use candle_core::{DType, Device, Tensor, Var};
use lafn::runtime::tiny::{write_tiny_model, write_tiny_safetensors, TinySpec};
use lafn::runtime::{
    AnswerOpening, AnswerTrack, Arch, CandidateLimits, FfnDelta, GenerateOptions, GenerationDeltas, HeadObjective,
    Hooks, KeptDistributions, LoadedModel, Model, PaddedBatch, PrefixCachedBatch, PromptStates, PromptTarget,
    TeacherForcingBatch, TokenStart, TrainedOpening, WeightMode,
};
use lafn::text::scripts::{Opening, Script};

const ARCHS: [Arch; 3] = [Arch::Gemma3, Arch::Llama, Arch::Qwen2];

fn tiny(arch: Arch) -> (tempfile::TempDir, LoadedModel) {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_model(dir.path(), TinySpec::new(arch)).unwrap();
    let loaded = LoadedModel::load(&files, WeightMode::Quantized, &Device::Cpu).unwrap();
    (dir, loaded)
}

fn last_logits(model: &Model, ids: &[u32], edits: &[FfnDelta]) -> Tensor {
    let input = Tensor::new(ids, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let hidden = model.forward(&input, None, Hooks::with_deltas(edits)).unwrap().hidden.unwrap();
    let last = hidden.get(0).unwrap().get(ids.len() - 1).unwrap();
    model.logits(&last.unsqueeze(0).unwrap()).unwrap().squeeze(0).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn quantized_and_dense_weights_agree() {
    for arch in ARCHS {
        let (_dir, loaded) = tiny(arch);
        let dense = loaded.load_weights(WeightMode::Dense).unwrap();
        let ids = loaded.tokenizer.encode_prompt("what country is Shmavon Shmavonyan from ?").unwrap();
        let diff = max_abs_diff(&last_logits(&loaded.model, &ids, &[]), &last_logits(&dense, &ids, &[]));
        // Quantized matmuls round activations to 8 bits; the rest is the same computation.
        assert!(diff < 0.1, "{arch:?}: quantized vs dense logits differ by {diff}");
    }
}

#[test]
fn safetensors_checkpoint_matches_gguf() {
    for arch in [Arch::Gemma3, Arch::Qwen2] {
        let dir = tempfile::tempdir().unwrap();
        let gguf = write_tiny_model(&dir.path().join("gguf"), TinySpec::new(arch)).unwrap();
        let hf = write_tiny_safetensors(&gguf, &dir.path().join("hf")).unwrap();
        let a = LoadedModel::load(&gguf, WeightMode::Dense, &Device::Cpu).unwrap();
        let b = LoadedModel::load(&hf, WeightMode::Dense, &Device::Cpu).unwrap();
        let ids = a.tokenizer.encode_prompt("the capital of France is").unwrap();
        let diff = max_abs_diff(&last_logits(&a.model, &ids, &[]), &last_logits(&b.model, &ids, &[]));
        assert!(diff < 1e-4, "{arch:?}: safetensors vs GGUF logits differ by {diff}");
    }
}

#[test]
fn kv_cache_generation_equals_full_recomputation() {
    for arch in ARCHS {
        let (_dir, loaded) = tiny(arch);
        for model in [&loaded.model, &loaded.load_weights(WeightMode::Dense).unwrap()] {
            let prompt = loaded.tokenizer.encode_prompt("where was Alice born ?").unwrap();
            let options = GenerateOptions { max_new_tokens: 6, ..Default::default() };
            let generated = model.generate(&prompt, GenerationDeltas::NONE, &options, &[], &mut |_| true).unwrap();
            assert_eq!(generated.len(), 6);
            let mut seq = prompt.clone();
            for &token in &generated {
                let argmax = last_logits(model, &seq, &[]).argmax(0).unwrap().to_scalar::<u32>().unwrap();
                assert_eq!(argmax, token, "{arch:?}: cached decode diverged from full forward");
                seq.push(token);
            }
        }
    }
}

#[test]
fn right_padding_does_not_change_real_positions() {
    for arch in ARCHS {
        let (_dir, loaded) = tiny(arch);
        let dense = loaded.load_weights(WeightMode::Dense).unwrap();
        let short = loaded.tokenizer.encode_prompt("Paris is").unwrap();
        let long = loaded.tokenizer.encode_prompt("the capital of Italy is Rome and").unwrap();
        let batch = PaddedBatch::new(&[short.clone(), long.clone()], loaded.tokenizer.pad_id(), &Device::Cpu).unwrap();
        let logits = dense.logits_at(&batch, &[(0, short.len() - 1), (1, long.len() - 1)], &[]).unwrap();
        let alone = last_logits(&dense, &short, &[]);
        let diff = max_abs_diff(&logits.get(0).unwrap(), &alone);
        assert!(diff < 1e-4, "{arch:?}: padded row differs from the unpadded run by {diff}");
    }
}

#[test]
fn hooks_capture_activations_and_zero_edits_change_nothing() {
    let (_dir, loaded) = tiny(Arch::Gemma3);
    let model = &loaded.model;
    let ids = loaded.tokenizer.encode_prompt("who is Bob ?").unwrap();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let out = model
        .forward(&input, None, Hooks { capture_layers: &[0, 2], stop_after_layer: Some(2), ..Default::default() })
        .unwrap();
    assert!(out.hidden.is_none(), "stopping after the last captured layer skips the head");
    assert_eq!(out.activations.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
    assert_eq!(out.activations[&0].dims(), &[1, ids.len(), 128]);

    let zero = FfnDelta {
        layer: 1,
        neurons: Tensor::new(&[1u32, 5, 9], &Device::Cpu).unwrap(),
        delta: Tensor::zeros((3, 64), DType::F32, &Device::Cpu).unwrap(),
    };
    let base = last_logits(model, &ids, &[]);
    assert_eq!(max_abs_diff(&base, &last_logits(model, &ids, std::slice::from_ref(&zero))), 0.0);
    let nonzero = FfnDelta { delta: Tensor::ones((3, 64), DType::F32, &Device::Cpu).unwrap(), ..zero };
    assert!(max_abs_diff(&base, &last_logits(model, &ids, &[nonzero])) > 1e-3);
}

/// Loss of a fixed target under edits at layers 0 and 2 (the layer-0 gradient crosses two blocks).
fn edit_loss(model: &Model, pairs: &[PromptTarget], deltas: &[Tensor], pad: u32) -> Tensor {
    let edits: Vec<FfnDelta> = [0usize, 2]
        .iter()
        .zip(deltas)
        .map(|(&layer, delta)| FfnDelta {
            layer,
            neurons: Tensor::new(&[3u32, 17, 40, 99], &Device::Cpu).unwrap(),
            delta: delta.clone(),
        })
        .collect();
    let scored = model.target_log_probs(pairs, &edits, pad).unwrap();
    scored.token_log_probs.mean_all().unwrap().neg().unwrap()
}

#[test]
fn update_value_gradients_match_finite_differences() {
    for arch in ARCHS {
        let (_dir, loaded) = tiny(arch);
        let dense = loaded.load_weights(WeightMode::Dense).unwrap();
        let tok = &loaded.tokenizer;
        let pairs = vec![
            PromptTarget {
                prompt: tok.encode_prompt("what country is Shmavon from ?").unwrap(),
                target: tok.encode_plain("Yemen .").unwrap(),
            },
            PromptTarget {
                prompt: tok.encode_prompt("Shmavon ist aus").unwrap(),
                target: tok.encode_plain("Jemen").unwrap(),
            },
        ];
        let vars: Vec<Var> = (0..2)
            .map(|i| {
                let values: Vec<f32> = (0..4 * 64).map(|j| ((j * 7 + i * 13) % 17) as f32 / 17.0 - 0.5).collect();
                Var::from_tensor(&Tensor::from_vec(values, (4, 64), &Device::Cpu).unwrap()).unwrap()
            })
            .collect();
        let deltas: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let grads = edit_loss(&dense, &pairs, &deltas, tok.pad_id()).backward().unwrap();
        let mut checked = 0;
        for (layer_slot, var) in vars.iter().enumerate() {
            let analytic = grads.get(var).expect("gradient reaches every edit").to_vec2::<f32>().unwrap();
            for (row, col) in [(0, 0), (1, 10), (2, 33), (3, 63)] {
                let base = var.as_tensor().to_vec2::<f32>().unwrap();
                let shifted = |step: f32| {
                    let mut values = base.clone();
                    values[row][col] += step;
                    let mut moved = deltas.clone();
                    moved[layer_slot] = Tensor::new(values, &Device::Cpu).unwrap();
                    edit_loss(&dense, &pairs, &moved, tok.pad_id()).to_scalar::<f32>().unwrap()
                };
                // Central differences at two step sizes, combined (Richardson) to cancel the curvature term.
                let central = |h: f32| (shifted(h) - shifted(-h)) / (2.0 * h);
                let numeric = (4.0 * central(5e-3) - central(1e-2)) / 3.0;
                let a = analytic[row][col];
                assert!(
                    (numeric - a).abs() <= 0.02 * a.abs().max(numeric.abs()) + 2e-4,
                    "{arch:?}: d loss / d dV[{layer_slot}][{row}][{col}]: analytic {a}, numeric {numeric}"
                );
                checked += usize::from(a.abs() > 1e-3);
            }
        }
        assert!(checked >= 4, "{arch:?}: too few non-trivial gradients ({checked})");
    }
}

#[test]
fn answer_tails_equal_full_passes_in_values_and_gradients() {
    for arch in ARCHS {
        let (_dir, loaded) = tiny(arch);
        let dense = loaded.load_weights(WeightMode::Dense).unwrap();
        let tok = &loaded.tokenizer;
        let pairs: Vec<PromptTarget> = [("what country is Shmavon from ?", "Yemen ."), ("Bob ist aus", "Jemen")]
            .iter()
            .map(|(p, t)| PromptTarget { prompt: tok.encode_prompt(p).unwrap(), target: tok.encode_plain(t).unwrap() })
            .collect();
        let batch = TeacherForcingBatch::new(&pairs, tok.pad_id(), &Device::Cpu).unwrap();
        let delta =
            Var::from_tensor(&(Tensor::ones((4, 64), DType::F32, &Device::Cpu).unwrap() * 0.3).unwrap()).unwrap();
        let edits = [FfnDelta {
            layer: 2,
            neurons: Tensor::new(&[3u32, 17, 40, 99], &Device::Cpu).unwrap(),
            delta: delta.as_tensor().clone(),
        }];
        let full = dense.hidden_at(&batch.batch, &batch.cells, Hooks::with_deltas(&edits)).unwrap();
        let tails = PrefixCachedBatch::new(&dense, &batch.batch, 2, tok.pad_id(), &PromptStates::default()).unwrap();
        let tail = tails.hidden_at(&dense, &batch.cells, &edits).unwrap();
        assert!(max_abs_diff(&full, &tail) < 1e-4, "{arch:?}: tails differ from the full pass");
        // The first prompt's prefix read from a longer sequence run earlier, beside another, at
        // another width; the second's run afresh.
        let mut known = PromptStates::default();
        let longer = [pairs[0].prompt.clone(), vec![9, 10, 11, 12, 13, 14, 15, 16, 17, 18]].concat();
        known.run(&dense, &[vec![5, 6, 7], longer], tok.pad_id()).unwrap();
        let read = PrefixCachedBatch::new(&dense, &batch.batch, 2, tok.pad_id(), &known).unwrap();
        let read_tail = read.hidden_at(&dense, &batch.cells, &edits).unwrap();
        assert!(max_abs_diff(&full, &read_tail) < 1e-4, "{arch:?}: prefixes read from known states differ");
        let grad_of = |hidden: &Tensor| hidden.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let (full_grad, tail_grad) = (grad_of(&full), grad_of(&tail));
        let diff = max_abs_diff(full_grad.get(&delta).unwrap(), tail_grad.get(&delta).unwrap());
        let scale = full_grad.get(&delta).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff <= 1e-3 * scale, "{arch:?}: tail gradients differ by {diff} (scale {scale})");
    }
}

#[test]
fn edits_act_only_from_the_answer_start() {
    let (_dir, loaded) = tiny(Arch::Gemma3);
    let ids = loaded.tokenizer.encode_prompt("who is Bob ?").unwrap();
    let batch = PaddedBatch::new(std::slice::from_ref(&ids), loaded.tokenizer.pad_id(), &Device::Cpu).unwrap();
    let edit = FfnDelta {
        layer: 1,
        neurons: Tensor::new(&[1u32, 5, 9], &Device::Cpu).unwrap(),
        delta: Tensor::ones((3, 64), DType::F32, &Device::Cpu).unwrap(),
    };
    let every_position: Vec<(usize, usize)> = (0..ids.len()).map(|p| (0, p)).collect();
    let hidden =
        |edits: &[FfnDelta]| loaded.model.hidden_at(&batch, &every_position, Hooks::with_deltas(edits)).unwrap();
    let (base, edited) = (hidden(&[]), hidden(std::slice::from_ref(&edit)));
    let before = ids.len() - 1;
    assert_eq!(max_abs_diff(&base.narrow(0, 0, before).unwrap(), &edited.narrow(0, 0, before).unwrap()), 0.0);
    assert!(max_abs_diff(&base.narrow(0, before, 1).unwrap(), &edited.narrow(0, before, 1).unwrap()) > 1e-3);

    // Generation: the edits act while the answer is one they were trained to give.
    let options = GenerateOptions { max_new_tokens: 4, ..Default::default() };
    let dense = loaded.load_weights(WeightMode::Dense).unwrap();
    // An update value pointing at token 7's output row, on the neuron most active at the answer start,
    // makes 7 the answer.
    let input = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let h = dense.forward(&input, None, Hooks { capture_layers: &[1], ..Default::default() }).unwrap().activations[&1]
        .get(0)
        .unwrap()
        .get(ids.len() - 1)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let (neuron, activation) = h.iter().copied().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).unwrap();
    let row = dense.output_rows(&Tensor::new(&[7u32], &Device::Cpu).unwrap()).unwrap();
    let strong = FfnDelta {
        layer: 1,
        neurons: Tensor::new(&[neuron as u32], &Device::Cpu).unwrap(),
        delta: (row * (100.0 / activation as f64)).unwrap(),
    };
    let run_for = |answers: Option<&[String]>, options: &GenerateOptions| {
        let track =
            answers.map(|answers| AnswerTrack { tokenizer: &loaded.tokenizer, answers, in_query_language: &[] });
        let edits = GenerationDeltas { deltas: std::slice::from_ref(&strong), track, opening: None };
        dense.generate(&ids, edits, options, &[], &mut |_| true).unwrap()
    };
    let run = |answers: Option<&[String]>| run_for(answers, &options);
    let unedited = dense.generate(&ids, GenerationDeltas::NONE, &options, &[], &mut |_| true).unwrap();
    assert_ne!(unedited[0], 7);
    assert_eq!(loaded.tokenizer.decode(&[7, 7]).unwrap(), "of of");
    assert_eq!(run(None), vec![7; 4], "without a track every position is edited");
    // With a track the first answer position is always edited...
    assert_eq!(run(Some(&["of Paris".to_string()]))[0], 7);
    // ...and an answer that would open otherwise than every trained answer opens as a trained answer,
    // on trial: kept where the model, going on from it, writes that answer whole (after "Paris" this
    // model writes "Paris"), undone where it leaves it: then the model's own opening stands.
    let answered = |answer: &str| loaded.tokenizer.decode(&run(Some(&[answer.to_string()]))).unwrap();
    assert!(answered("Paris").trim_start().starts_with("Paris"), "{:?}", answered("Paris"));
    assert!(answered("Paris Paris").trim_start().starts_with("Paris Paris"), "{:?}", answered("Paris Paris"));
    assert_eq!(run(Some(&["Paris of".to_string()]))[0], 7, "{:?}", answered("Paris of"));
    // An answer about to be another language's trained answer is first tried as the query language's
    // own: kept where the model, going on from it, writes that one whole ("Paris"), not where it
    // leaves it ("Paris of": this model writes "Paris Paris"), and not tried without a query language.
    let in_language = |answers: &[String], in_query_language: &[String]| {
        let track = AnswerTrack { tokenizer: &loaded.tokenizer, answers, in_query_language };
        let edits = GenerationDeltas { deltas: std::slice::from_ref(&strong), track: Some(track), opening: None };
        loaded.tokenizer.decode(&dense.generate(&ids, edits, &options, &[], &mut |_| true).unwrap()).unwrap()
    };
    let languages = ["of of".to_string(), "Paris".to_string()];
    assert!(in_language(&languages, &[]).trim_start().starts_with("of of"), "{:?}", in_language(&languages, &[]));
    let asked = in_language(&languages, &languages[1..]);
    assert!(asked.trim_start().starts_with("Paris"), "{asked:?}");
    let unreachable = ["of of".to_string(), "Paris of".to_string()];
    let asked = in_language(&unreachable, &unreachable[1..]);
    assert!(asked.trim_start().starts_with("of of"), "{asked:?}");
    // Out of room on the way to the trained answer, the trial's tokens stand, cut as any answer is.
    let one_token = GenerateOptions { max_new_tokens: 1, ..options };
    let cut = run_for(Some(&["Paris Paris".to_string()]), &one_token);
    assert_eq!(loaded.tokenizer.decode(&cut).unwrap().trim(), "Paris");
    let track = |answer: &str| {
        AnswerTrack { tokenizer: &loaded.tokenizer, answers: &[answer.to_string()], in_query_language: &[] }
            .followed_tokens(&[7, 7, 18])
    };
    assert_eq!((track("of of"), track("of"), track("of Paris"), track("Paris")), (3, 2, 2, 1));
    // Teacher forced, limited to the answer's first token, the edit acts at that position only.
    let pair = PromptTarget { prompt: ids.clone(), target: vec![7, 18, 18] };
    let mut forced = TeacherForcingBatch::new(&[pair], loaded.tokenizer.pad_id(), &Device::Cpu).unwrap();
    let logits = |forced: &TeacherForcingBatch| {
        dense.logits_at(&forced.batch, &forced.cells, std::slice::from_ref(&strong)).unwrap()
    };
    let everywhere = logits(&forced);
    forced.limit_deltas(&[1]);
    let first_only = logits(&forced);
    let row = |logits: &Tensor, i| logits.narrow(0, i, 1).unwrap();
    assert_eq!(max_abs_diff(&row(&everywhere, 0), &row(&first_only, 0)), 0.0);
    assert!(max_abs_diff(&everywhere.narrow(0, 1, 2).unwrap(), &first_only.narrow(0, 1, 2).unwrap()) > 1e-3);

    // Held to an answer opening with a digit, where token 5 alone opens so: the edited token 7, a line
    // break or a Latin word here, may not come first, 5 does; a mark may, once.
    let options = GenerateOptions { max_new_tokens: 6, ..options };
    let latin = TokenStart::Opens(Opening::Letter(Some(Script::Latin)));
    let mut starts = vec![latin; dense.config().vocab_size];
    starts[5] = TokenStart::Opens(Opening::Digit);
    let held = |starts: &[TokenStart], opening| {
        let opening = Some(AnswerOpening {
            starts,
            tokenizer: &loaded.tokenizer,
            trained: TrainedOpening { opening, in_pieces: false },
        });
        let edits = GenerationDeltas { deltas: std::slice::from_ref(&strong), track: None, opening };
        dense.generate(&ids, edits, &options, &[], &mut |_| true).unwrap()
    };
    for start in [TokenStart::LineBreak, latin] {
        starts[7] = start;
        assert_eq!(held(&starts, Opening::Digit)[0], 5);
    }
    starts[7] = TokenStart::Opens(Opening::Mark);
    assert_eq!(held(&starts, Opening::Digit)[..2], [7, 5]);
    // A piece of a character does not open an answer whose trained first token is whole.
    starts[7] = latin;
    starts[5] = TokenStart::Unknown;
    starts[3] = TokenStart::Opens(Opening::Digit);
    assert_eq!(held(&starts, Opening::Digit)[0], 3);
    // Where 7 opens as asked, nothing changes.
    let free = GenerationDeltas { deltas: std::slice::from_ref(&strong), track: None, opening: None };
    let unheld = dense.generate(&ids, free, &options, &[], &mut |_| true).unwrap();
    assert_eq!(held(&starts, Opening::Letter(Some(Script::Latin))), unheld);
}

#[test]
fn closed_form_head_losses_equal_autograd() {
    let (_dir, loaded) = tiny(Arch::Gemma3);
    let dense = loaded.load_weights(WeightMode::Dense).unwrap();
    let (hidden_size, vocab) = (dense.config().hidden_size, dense.config().vocab_size);
    let hidden = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, hidden_size), &Device::Cpu).unwrap()).unwrap();
    let target_ids = [3u32, 7, 7];
    let kept =
        lafn::runtime::log_softmax_last_dim(&Tensor::randn(0f32, 2.0, (2, vocab), &Device::Cpu).unwrap()).unwrap();
    let kept_log_probs: Vec<f32> = kept.flatten_all().unwrap().to_vec1().unwrap();
    let kept_distributions = KeptDistributions::from_log_probs(&kept_log_probs, vocab).unwrap();
    let objective =
        HeadObjective { target_ids: &target_ids, target_weight: 0.5, kept: &kept_distributions, kept_weight: 0.25 };
    let head =
        dense.head_losses(hidden.as_tensor(), &objective, &CandidateLimits::default(), &mut Vec::new()).unwrap().0;

    // The same losses from tensor ops, differentiated by autograd.
    let log_probs = lafn::runtime::log_softmax_last_dim(&dense.logits(hidden.as_tensor()).unwrap()).unwrap();
    let ids = Tensor::new(&target_ids, &Device::Cpu).unwrap().unsqueeze(1).unwrap();
    let target_log_probs = log_probs.narrow(0, 0, 3).unwrap().gather(&ids, 1).unwrap().squeeze(1).unwrap();
    let divergences =
        (kept.exp().unwrap() * (&kept - log_probs.narrow(0, 3, 2).unwrap()).unwrap()).unwrap().sum(1).unwrap();
    let loss = ((target_log_probs.sum_all().unwrap() * -0.5).unwrap()
        + (divergences.sum_all().unwrap() * 0.25).unwrap())
    .unwrap();
    let grad = loss.backward().unwrap().get(&hidden).unwrap().clone();

    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs()));
    assert!(close(&head.target_log_probs, &target_log_probs.to_vec1::<f32>().unwrap()));
    assert!(close(&head.kept_divergences, &divergences.to_vec1::<f32>().unwrap()));
    assert!(max_abs_diff(&head.hidden_grad, &grad) <= 1e-5, "gradients differ");
    let logits: Vec<Vec<f32>> = dense.logits(hidden.as_tensor()).unwrap().to_vec2().unwrap();
    for (row, (&id, margin)) in target_ids.iter().zip(&head.target_margins).enumerate() {
        let best_other =
            logits[row].iter().enumerate().filter(|&(t, _)| t != id as usize).map(|(_, &l)| l).fold(f32::MIN, f32::max);
        assert_eq!(*margin, logits[row][id as usize] - best_other);
    }
}

#[test]
fn candidate_head_losses_follow_the_full_pass_that_chose_them() {
    let (_dir, loaded) = tiny(Arch::Gemma3);
    let dense = loaded.load_weights(WeightMode::Dense).unwrap();
    let (hidden_size, vocab) = (dense.config().hidden_size, dense.config().vocab_size);
    let start = Tensor::randn(0f32, 1.0, (5, hidden_size), &Device::Cpu).unwrap();
    let kept = lafn::runtime::log_softmax_last_dim(&dense.logits(&start.narrow(0, 3, 2).unwrap()).unwrap()).unwrap();
    let kept =
        KeptDistributions::from_log_probs(&kept.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vocab).unwrap();
    let objective = HeadObjective { target_ids: &[3, 7, 7], target_weight: 0.5, kept: &kept, kept_weight: 0.25 };
    // Few candidates a row: most of each row's probability is in its lump.
    let limits = CandidateLimits { probability: 0.05, per_row: 6, likeliest: 3 };
    let (_, candidates) = dense.head_losses(&start, &objective, &limits, &mut Vec::new()).unwrap();
    assert!(candidates.token_count() < vocab / 2, "{} of {vocab} tokens are candidates", candidates.token_count());

    let norm = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
    // The largest difference of the estimate's losses from the full pass's, and its gradient's relative one.
    let errors = |hidden: &Tensor| {
        let (full, _) = dense.head_losses(hidden, &objective, &limits, &mut Vec::new()).unwrap();
        let estimate = dense.candidate_head_losses(hidden, &objective, &candidates).unwrap();
        let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        let losses = worst(&estimate.target_log_probs, &full.target_log_probs)
            .max(worst(&estimate.target_margins, &full.target_margins))
            .max(worst(&estimate.kept_divergences, &full.kept_divergences));
        (losses, norm(&(&estimate.hidden_grad - &full.hidden_grad).unwrap()) / norm(&full.hidden_grad))
    };
    // Where they were chosen, candidates and lump give the full pass's losses and gradient.
    let (losses, gradient) = errors(&start);
    assert!(losses < 1e-4 && gradient < 1e-4, "{losses} {gradient}");
    // A step away the lump follows the hidden state: to first order, so the error is of second order.
    let step = Tensor::randn(0f32, 1.0, (5, hidden_size), &Device::Cpu).unwrap();
    let away = |size: f64| errors(&(&start + (&step * size).unwrap()).unwrap());
    let ((small_losses, _), (losses, gradient)) = (away(0.01), away(0.1));
    assert!(losses < 0.05 && gradient < 0.05, "{losses} {gradient}");
    assert!(small_losses < losses / 30.0, "{small_losses} against {losses}");
    // Rows that do not match the candidates' are refused.
    assert!(dense.candidate_head_losses(&start.narrow(0, 0, 4).unwrap(), &objective, &candidates).is_err());
}

#[test]
fn editing_weights_read_the_quantized_models_head() {
    let (_dir, loaded) = tiny(Arch::Gemma3);
    let editing = loaded.editing_weights().unwrap();
    if loaded.model.arithmetic() != "quantized-q8-tiles-attend-gelu" {
        eprintln!("skipped: this CPU has no tiled kernel, and editing weights are all dense on it");
        assert_eq!(editing.arithmetic(), "dense");
        return;
    }
    assert_eq!(editing.arithmetic(), "dense-with-q8-tiles-head");
    let dense = loaded.load_weights(WeightMode::Dense).unwrap();
    assert!(editing.weight_bytes() < dense.weight_bytes(), "the dense embedding is not loaded");
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_model(dir.path(), TinySpec::new(Arch::Gemma3)).unwrap();
    let dense_loaded = LoadedModel::load(&files, WeightMode::Dense, &Device::Cpu).unwrap();
    assert_eq!(dense_loaded.editing_weights().unwrap().arithmetic(), "dense", "a dense model edits on itself");
    let hidden = Tensor::randn(0f32, 1.0, (5, editing.config().hidden_size), &Device::Cpu).unwrap();
    assert_eq!(max_abs_diff(&editing.logits(&hidden).unwrap(), &loaded.model.logits(&hidden).unwrap()), 0.0);

    // The gradient over hidden states reads the head's rows, the same values as the dense head's: the
    // two differ only as much as their logits (activations rounded to 8 bits in the tiled product).
    let vocab = editing.config().vocab_size;
    let kept = lafn::runtime::log_softmax_last_dim(&Tensor::randn(0f32, 2.0, (2, vocab), &Device::Cpu).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let kept = KeptDistributions::from_log_probs(&kept, vocab).unwrap();
    let objective = HeadObjective { target_ids: &[3, 7, 7], target_weight: 0.5, kept: &kept, kept_weight: 0.25 };
    let tiled =
        editing.head_losses(&hidden, &objective, &CandidateLimits::default(), &mut Vec::new()).unwrap().0.hidden_grad;
    let plain =
        dense.head_losses(&hidden, &objective, &CandidateLimits::default(), &mut Vec::new()).unwrap().0.hidden_grad;
    let norm = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
    let relative = norm(&(&tiled - &plain).unwrap()) / norm(&plain);
    assert!(relative < 0.02, "head gradients differ by {relative} of their norm");
}
