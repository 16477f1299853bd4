//! How a question is put to the model: through its chat template (instruct models), in a plain
//! question-and-answer frame, or as typed (raw completion).

use std::path::Path;

use candle_core::quantized::gguf_file;
use color_eyre::eyre::{eyre, WrapErr};
use minijinja::syntax::SyntaxConfig;
use minijinja::{context, Environment, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::Result;

/// How questions are framed in chat, in generation scoring and among an edit's training prompts
/// (the `frame` setting, `--frame`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PromptFrame {
    /// The model's chat template when it has a usable one, else the QA frame.
    #[default]
    Auto,
    /// The model's chat template; an error for a model without a usable one.
    Template,
    /// `Q: {question}` then `A:` on the next line: a plain frame for base models.
    Qa,
    /// The question as typed (raw completion).
    Raw,
}

/// A [`PromptFrame`] resolved for one model (see `Tokenizer::chat_frame`).
#[derive(Clone, Copy)]
pub enum ChatFrame<'a> {
    Raw,
    Qa,
    Template(&'a ChatTemplate),
}

impl ChatFrame<'_> {
    /// The text the model reads for `question`; the tokenizer adds the BOS token itself.
    pub fn frame(&self, question: &str) -> Result<String> {
        match self {
            Self::Raw => Ok(question.to_string()),
            Self::Qa => Ok(format!("Q: {}\nA:", question.trim())),
            Self::Template(template) => template.render(question),
        }
    }

    pub fn is_raw(&self) -> bool {
        matches!(self, Self::Raw)
    }

    /// The setting that names this frame itself (never `Auto`).
    pub fn setting(&self) -> PromptFrame {
        match self {
            Self::Raw => PromptFrame::Raw,
            Self::Qa => PromptFrame::Qa,
            Self::Template(_) => PromptFrame::Template,
        }
    }
}

/// A model's chat template (Jinja, as Hugging Face renders it), compiled.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    pub(super) eos: String,
    /// The BOS text, when the tokenizer adds the BOS token itself: dropped from the rendered start so
    /// the prompt does not hold it twice.
    added_bos: Option<String>,
}

/// A chat template as found beside or in the model, before it is compiled.
pub struct TemplateSource {
    pub source: String,
    /// BOS and EOS texts given with the template (`tokenizer_config.json`); else the tokenizer's.
    pub bos: Option<String>,
    pub eos: Option<String>,
}

const TEMPLATE_NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles `source` and renders it once, so a template that cannot serve a question fails here,
    /// at load, rather than at the first question.
    pub fn new(source: &str, bos: &str, eos: &str, added_bos: bool) -> Result<Self> {
        let mut env = Environment::new();
        // Hugging Face renders templates with trim_blocks and lstrip_blocks; templates are written for it.
        let syntax = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build()?;
        env.set_syntax(syntax);
        // Python string methods (`.strip()`, `.startswith()`, ...) that templates call.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| eyre!("the chat template does not compile: {e:#}"))?;
        let added_bos = added_bos.then(|| bos.to_string()).filter(|b| !b.is_empty());
        let template = Self { env, bos: bos.to_string(), eos: eos.to_string(), added_bos };
        template.render("Which city is the capital of France?")?;
        Ok(template)
    }

    /// The template rendered for one user turn holding `question`, ready for the assistant's answer.
    pub fn render(&self, question: &str) -> Result<String> {
        let template = self.env.get_template(TEMPLATE_NAME)?;
        let rendered = template
            .render(context! {
                messages => vec![context! { role => "user", content => question }],
                add_generation_prompt => true,
                bos_token => &self.bos,
                eos_token => &self.eos,
            })
            .map_err(|e| eyre!("the chat template cannot be rendered: {e:#}"))?;
        Ok(match &self.added_bos {
            Some(bos) => rendered.strip_prefix(bos.as_str()).map(str::to_string).unwrap_or(rendered),
            None => rendered,
        })
    }
}

impl TemplateSource {
    /// The model's chat template: GGUF metadata `tokenizer.chat_template`, else `chat_template.jinja`
    /// or `tokenizer_config.json` beside `tokenizer.json`. `None`: the model has none (a base model).
    pub fn find(gguf: Option<&gguf_file::Content>, tokenizer_json: Option<&Path>) -> Result<Option<Self>> {
        let in_gguf = gguf.and_then(|c| c.metadata.get("tokenizer.chat_template")).and_then(|v| v.to_string().ok());
        if let Some(source) = in_gguf {
            return Ok(Some(Self { source: source.clone(), bos: None, eos: None }));
        }
        let Some(dir) = tokenizer_json.and_then(Path::parent) else {
            return Ok(None);
        };
        let config = dir.join("tokenizer_config.json");
        let config: serde_json::Value = if config.is_file() {
            let text = std::fs::read_to_string(&config)?;
            serde_json::from_str(&text).wrap_err_with(|| format!("{} is not valid JSON", config.display()))?
        } else {
            serde_json::Value::Null
        };
        let special = |key: &str| match &config[key] {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Object(token) => token.get("content").and_then(|c| c.as_str()).map(str::to_string),
            _ => None,
        };
        let jinja = dir.join("chat_template.jinja");
        let source = if jinja.is_file() {
            Some(std::fs::read_to_string(&jinja)?)
        } else {
            template_in_config(&config["chat_template"])
        };
        Ok(source.map(|source| Self { source, bos: special("bos_token"), eos: special("eos_token") }))
    }
}

/// `chat_template` of `tokenizer_config.json`: a string, or a list of named templates (the `default`).
fn template_in_config(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(source) => Some(source.clone()),
        serde_json::Value::Array(named) => {
            named.iter().find(|t| t["name"] == "default").and_then(|t| t["template"].as_str()).map(str::to_string)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + \
                          message['content'].strip() + '<|im_end|>' + '\n'}}{% endfor %}\
                          {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    const LLAMA_LIKE: &str = "{{ bos_token }}{% for message in messages %}\n\
                              {% if message['role'] == 'user' %}\n[INST] {{ message['content'] }} [/INST]\n\
                              {% endif %}\n{% endfor %}";

    #[test]
    fn a_chatml_template_frames_one_user_turn() {
        let template = ChatTemplate::new(CHATML, "", "<|im_end|>", false).unwrap();
        let framed = template.render("  Where is Paris? ").unwrap();
        assert_eq!(framed, "<|im_start|>user\nWhere is Paris?<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn blocks_are_trimmed_as_hugging_face_renders_them() {
        let template = ChatTemplate::new(LLAMA_LIKE, "<s>", "</s>", false).unwrap();
        assert_eq!(template.render("Where is Paris?").unwrap(), "<s>[INST] Where is Paris? [/INST]\n");
    }

    #[test]
    fn the_bos_the_tokenizer_adds_is_not_written_twice() {
        let template = ChatTemplate::new(LLAMA_LIKE, "<s>", "</s>", true).unwrap();
        assert_eq!(template.render("Where is Paris?").unwrap(), "[INST] Where is Paris? [/INST]\n");
    }

    #[test]
    fn templates_that_raise_or_use_unknown_filters_fail_at_load_with_the_reason() {
        let raising = "{{ raise_exception('Conversation roles must alternate') }}";
        let error = format!("{:#}", ChatTemplate::new(raising, "", "", false).err().unwrap());
        assert!(error.contains("Conversation roles must alternate"), "{error}");
        let unknown_filter = "{{ messages[0]['content'] | shout }}";
        let error = format!("{:#}", ChatTemplate::new(unknown_filter, "", "", false).err().unwrap());
        assert!(error.contains("shout"), "{error}");
        let unclosed = "{% for message in messages %}";
        assert!(ChatTemplate::new(unclosed, "", "", false).is_err());
    }

    #[test]
    fn the_qa_frame_puts_the_answer_after_a_colon() {
        assert_eq!(ChatFrame::Qa.frame(" Where is Paris?").unwrap(), "Q: Where is Paris?\nA:");
        assert_eq!(ChatFrame::Raw.frame(" Where is Paris?").unwrap(), " Where is Paris?");
    }

    #[test]
    fn tokenizer_config_templates_are_read_beside_the_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        let tokenizer = dir.path().join("tokenizer.json");
        assert!(TemplateSource::find(None, Some(&tokenizer)).unwrap().is_none());
        let config = serde_json::json!({
            "chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": CHATML}],
            "bos_token": {"content": "<s>", "special": true},
            "eos_token": "</s>",
        });
        std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
        let found = TemplateSource::find(None, Some(&tokenizer)).unwrap().unwrap();
        assert_eq!(
            (found.source.as_str(), found.bos.as_deref(), found.eos.as_deref()),
            (CHATML, Some("<s>"), Some("</s>"))
        );
    }
}
