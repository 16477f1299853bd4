//! Short words that some languages write attached to the next or previous word: Hebrew and Arabic
//! prefixes ("and", "the", "in", "to": "בליסורס" is "in Lisors", "بالقاهرة" "in Cairo") and Korean
//! particles after a noun ("퀴리는" is "Curie" as the topic). A name in a question then reads as another
//! word unless they are taken off.

use super::tokens::{Token, TokenKind};

/// Hebrew letters that attach as prefixes: ve- (and), ha- (the), be- (in), le- (to), mi- (from), she-
/// (that), ke- (as). Up to two stack ("ובבית", "שהספר").
const HEBREW_PREFIXES: &str = "והבלמשכ";
/// Arabic conjunctions (wa, fa), then prepositions (bi, ka, li), then the article (al), in this order.
const ARABIC_CONJUNCTIONS: &str = "وف";
const ARABIC_PREPOSITIONS: &str = "بكل";
const ARABIC_ARTICLE: &str = "ال";
/// Korean particles, longest first so that "에서" goes before "서" could.
const KOREAN_PARTICLES: &[&str] = &[
    "에서", "에게", "으로", "께서", "한테", "처럼", "까지", "부터", "은", "는", "이", "가", "을", "를", "의", "에",
    "와", "과", "도", "로", "만",
];
/// What remains of a word after taking clitics off must have at least this many letters: shorter
/// remains are common words of their own.
const MIN_STEM_LETTERS: usize = 3;
const MIN_KOREAN_STEM_SYLLABLES: usize = 2;

/// The word without the clitics it may carry, each way of taking them off once (none if it has none).
pub fn without_clitics(token: &Token) -> Vec<Token> {
    if token.kind != TokenKind::Word {
        return Vec::new();
    }
    let word = token.text.as_str();
    let first = word.chars().next().unwrap_or_default();
    let stems = match first {
        '\u{05D0}'..='\u{05EA}' => hebrew_stems(word),
        '\u{0600}'..='\u{06FF}' => arabic_stems(word),
        '\u{AC00}'..='\u{D7A3}' => korean_stems(word),
        _ => Vec::new(),
    };
    stems.into_iter().map(|text| Token { kind: TokenKind::Word, text }).collect()
}

fn letters(text: &str) -> usize {
    text.chars().count()
}

fn hebrew_stems(word: &str) -> Vec<String> {
    let mut stems = Vec::new();
    let mut rest = word;
    // Up to two prefixes stack.
    for _ in 0..2 {
        let Some(stem) = take_off(strip_one_of(rest, HEBREW_PREFIXES), &mut stems) else { break };
        rest = stem;
    }
    stems
}

fn arabic_stems(word: &str) -> Vec<String> {
    let mut stems = Vec::new();
    let rest = take_off(strip_one_of(word, ARABIC_CONJUNCTIONS), &mut stems).unwrap_or(word);
    // li- before the article drops the article's alif: "للكتاب" is "to the book".
    if take_off(rest.strip_prefix("لل"), &mut stems).is_none() {
        let rest = take_off(strip_one_of(rest, ARABIC_PREPOSITIONS), &mut stems).unwrap_or(rest);
        take_off(rest.strip_prefix(ARABIC_ARTICLE), &mut stems);
    }
    stems
}

/// `stripped`, noted among `stems`, if it is long enough to be one.
fn take_off<'a>(stripped: Option<&'a str>, stems: &mut Vec<String>) -> Option<&'a str> {
    let stem = stripped.filter(|stem| letters(stem) >= MIN_STEM_LETTERS)?;
    stems.push(stem.to_string());
    Some(stem)
}

/// `word` without its first letter if that is one of `letters`.
fn strip_one_of<'a>(word: &'a str, letters: &str) -> Option<&'a str> {
    let first = word.chars().next().filter(|c| letters.contains(*c))?;
    Some(&word[first.len_utf8()..])
}

fn korean_stems(word: &str) -> Vec<String> {
    KOREAN_PARTICLES
        .iter()
        .filter_map(|particle| word.strip_suffix(particle))
        .filter(|stem| letters(stem) >= MIN_KOREAN_STEM_SYLLABLES)
        .take(1)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stems(word: &str) -> Vec<String> {
        without_clitics(&Token { kind: TokenKind::Word, text: word.to_string() }).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn attached_words_come_off() {
        assert_eq!(stems("בליסורס"), ["ליסורס", "יסורס"]);
        assert_eq!(stems("ליוסף"), ["יוסף"]);
        assert_eq!(stems("בית"), Vec::<String>::new());
        assert_eq!(stems("بالقاهرة"), ["القاهرة", "قاهرة"]);
        assert_eq!(stems("والكتاب"), ["الكتاب", "كتاب"]);
        assert_eq!(stems("للكتاب"), ["كتاب"]);
        assert_eq!(stems("퀴리는"), ["퀴리"]);
        assert_eq!(stems("서울에서"), ["서울"]);
        assert_eq!(stems("하는"), Vec::<String>::new());
        assert_eq!(stems("Paris"), Vec::<String>::new());
    }
}
