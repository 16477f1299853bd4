//! Text in many languages, without a model: the language table ([`languages`], data in
//! `assets/languages.toml`), scripts ([`scripts`]), cutting text into tokens ([`tokens`]), loose
//! spellings that transliterations and inflections of one name share ([`normalize`]), and how alike two
//! tokens are ([`distance`]); consonant keys that find a name written in another script
//! ([`sounds`]); clitics written attached to words ([`clitics`]); how a text is written, names aside ([`writing`]). Retrieval of cached
//! edits by subject (`method::retrieve`) is built on it.

pub mod clitics;
pub mod distance;
pub mod languages;
pub mod normalize;
pub mod scripts;
pub mod sounds;
pub mod tokens;
pub mod writing;
