//! Chat frames on real models: the default model (a base model, its GGUF without a chat template) is
//! asked in the QA frame; SmolLM2-135M-Instruct (fetched on first use) through the ChatML template its GGUF carries,
//! its answer ending at the end of its turn.

mod common;

use candle_core::Device;
use lafn::method::apply::{answer, AnswerOptions};
use lafn::runtime::{LoadedModel, PromptFrame, WeightMode};

#[test]
fn the_default_model_is_asked_in_the_qa_frame_and_refuses_the_template_frame() {
    let loaded = common::default_quantized();
    let tokenizer = &loaded.tokenizer;
    assert_eq!(tokenizer.chat_frame(PromptFrame::Auto).unwrap().setting(), PromptFrame::Qa);
    let error = tokenizer.chat_frame(PromptFrame::Template).err().unwrap().to_string();
    assert!(error.contains("no chat template") && error.contains("qa or raw"), "{error}");
    assert!(tokenizer.chat_template_warning().is_none());
    // Asked raw, the base model wrote the question again; in the QA frame it answers.
    let question = "Who was the first president of the United States?";
    let reply = answer(&loaded.model, tokenizer, None, question, &AnswerOptions::chat(24), &mut |_| true).unwrap();
    assert!(reply.text.contains("George Washington"), "{:?}", reply.text);
}

#[test]
fn smollm2_is_asked_through_its_chat_template() {
    let files = common::model_files("smollm2-135m");
    let loaded = LoadedModel::load(&files, WeightMode::Quantized, &Device::Cpu).unwrap();
    let tokenizer = &loaded.tokenizer;
    let question = "What is the capital of Germany?";
    let framed = tokenizer.chat_frame(PromptFrame::Auto).unwrap().frame(question).unwrap();
    assert!(
        framed.ends_with(&format!("<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")),
        "{framed:?}"
    );
    // The turn markers are single special tokens, not text spelled out in pieces.
    let ids = tokenizer.encode_prompt(&framed).unwrap();
    let start = tokenizer.encode_plain("<|im_start|>").unwrap();
    assert_eq!(start.len(), 1);
    assert_eq!(ids.iter().filter(|&&id| id == start[0]).count(), 3, "system, user and assistant turns: {ids:?}");
    let end = tokenizer.encode_plain("<|im_end|>").unwrap();
    assert!(end.len() == 1 && tokenizer.stop_ids().contains(&end[0]));

    let reply = answer(&loaded.model, tokenizer, None, question, &AnswerOptions::chat(24), &mut |_| true).unwrap();
    assert!(reply.text.contains("Berlin") && !reply.text.contains("<|im"), "{:?}", reply.text);
}
