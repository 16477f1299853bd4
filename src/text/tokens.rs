//! Cutting text into lowercased tokens: words of scripts written with spaces, numbers, and runs of
//! scripts written without them (Chinese, Japanese, Thai), plus what is derived from tokens for
//! comparing texts: a key, features, n-grams.

use std::collections::HashSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::normalize::{lowercase_chars_located, strip_diacritics};
use super::scripts::Script;

/// What a token is made of decides how it may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenKind {
    /// Letters of a script that separates words with spaces.
    Word,
    /// Digits: they tell entities apart ("Venera 9", "Venera 10"), so they match exactly.
    Number,
    /// A stretch of a script written without spaces: matched as an approximate substring.
    Run,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    pub kind: TokenKind,
    pub text: String,
}

/// Runs longer than this are cut into overlapping chunks, so a huge text costs linear time to match.
const MAX_RUN_CHARS: usize = 64;

/// Lowercased tokens of a text, diacritics kept (they tell Vietnamese words apart). Everything that
/// is not a letter or digit separates, except spaces within unspaced scripts.
pub fn tokenize(text: &str) -> Vec<Token> {
    tokenize_located(text).into_iter().map(|located| located.token).collect()
}

/// A token of [`tokenize_located`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocatedToken {
    pub token: Token,
    /// Whether its first letter was uppercase.
    pub capitalized: bool,
    /// The bytes of the text it was read from (of a run cut into chunks, the whole run's).
    pub span: Range<usize>,
}

/// [`tokenize`], each token with whether it was capitalized and where in `text` it was.
pub fn tokenize_located(text: &str) -> Vec<LocatedToken> {
    let mut tokens = Vec::new();
    let mut current =
        LocatedToken { token: Token { kind: TokenKind::Word, text: String::new() }, capitalized: false, span: 0..0 };
    let mut current_kind = None;
    for lowered in lowercase_chars_located(text) {
        let kind = classify(lowered.c);
        // Thai and Chinese put spaces between phrases, not words: a run goes on across them.
        if lowered.c.is_whitespace() && current_kind == Some(TokenKind::Run) {
            continue;
        }
        if kind != current_kind {
            push_token(&mut tokens, current_kind, &mut current);
            current_kind = kind;
            current.capitalized = lowered.upper;
            current.span = lowered.source.clone();
        }
        if kind.is_some() {
            current.token.text.push(lowered.c);
            current.span.end = lowered.source.end;
        }
    }
    push_token(&mut tokens, current_kind, &mut current);
    tokens
}

fn push_token(tokens: &mut Vec<LocatedToken>, kind: Option<TokenKind>, current: &mut LocatedToken) {
    let text = std::mem::take(&mut current.token.text);
    let Some(kind) = kind else { return };
    let (capitalized, span) = (current.capitalized, current.span.clone());
    let chars: Vec<char> = text.chars().collect();
    if kind == TokenKind::Run && chars.len() > MAX_RUN_CHARS {
        let step = MAX_RUN_CHARS / 2;
        for start in (0..chars.len() - step).step_by(step) {
            let end = (start + MAX_RUN_CHARS).min(chars.len());
            let token = Token { kind, text: chars[start..end].iter().collect() };
            tokens.push(LocatedToken { token, capitalized, span: span.clone() });
        }
    } else {
        tokens.push(LocatedToken { token: Token { kind, text }, capitalized, span });
    }
}

fn classify(c: char) -> Option<TokenKind> {
    if c.is_ascii_digit() {
        Some(TokenKind::Number)
    } else if Script::of(c).is_some_and(|script| !script.writes_spaces()) {
        Some(TokenKind::Run)
    } else if c.is_alphanumeric() {
        Some(TokenKind::Word)
    } else {
        None
    }
}

/// The tokens joined by spaces: texts with equal keys differ only in case, punctuation and spacing.
pub fn token_key(tokens: &[Token]) -> String {
    tokens.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(" ")
}

/// What a text says besides names, for comparing two texts: word beginnings (robust to inflection),
/// numbers, and character pairs of unspaced runs.
pub fn content_features(tokens: &[Token]) -> HashSet<String> {
    let mut features = HashSet::new();
    for token in tokens {
        match token.kind {
            TokenKind::Word => {
                features.insert(strip_diacritics(&token.text).chars().take(5).collect());
            }
            TokenKind::Number => {
                features.insert(token.text.clone());
            }
            TokenKind::Run => {
                let chars: Vec<char> = token.text.chars().collect();
                if chars.len() == 1 {
                    features.insert(token.text.clone());
                }
                features.extend(chars.windows(2).map(|pair| pair.iter().collect::<String>()));
            }
        }
    }
    features
}

/// An n-gram of a token's spelling, padded with `'\0'` when shorter than three.
pub type Gram = [char; 3];

/// Distinct n-grams for finding similar tokens: trigrams of a word marked at both ends; character
/// pairs of a run (the character itself for a one-character run); none for a number.
pub fn ngrams(kind: TokenKind, spelling: &[char]) -> Vec<Gram> {
    let mut grams: Vec<Gram> = match kind {
        TokenKind::Number => Vec::new(),
        TokenKind::Word => {
            let marked: Vec<char> = std::iter::once('^').chain(spelling.iter().copied()).chain(['$']).collect();
            marked.windows(3).map(|w| [w[0], w[1], w[2]]).collect()
        }
        TokenKind::Run if spelling.len() == 1 => vec![[spelling[0], '\0', '\0']],
        TokenKind::Run => spelling.windows(2).map(|w| [w[0], w[1], '\0']).collect(),
    };
    grams.sort_unstable();
    grams.dedup();
    grams
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_know_where_in_the_text_they_were() {
        let text = "Où est né Ḿarie-Curie?  ไทย ภาษา 42";
        let tokens = tokenize_located(text);
        let read: Vec<(&str, &str, bool)> =
            tokens.iter().map(|t| (t.token.text.as_str(), &text[t.span.clone()], t.capitalized)).collect();
        assert_eq!(
            read,
            [
                ("où", "Où", true),
                ("est", "est", false),
                ("né", "né", false),
                ("ḿarie", "Ḿarie", true),
                ("curie", "Curie", true),
                ("ไทยภาษา", "ไทย ภาษา", false),
                ("42", "42", false),
            ]
        );
    }
}
