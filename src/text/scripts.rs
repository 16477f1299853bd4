//! Writing systems: which script a character belongs to, which script a text is mostly written in,
//! and whether the script separates words with spaces.

use serde::{Deserialize, Serialize};

/// A writing system, as far as text handling here tells them apart. Named as in the language table
/// (`assets/languages.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Script {
    Latin,
    Cyrillic,
    Greek,
    Armenian,
    Hebrew,
    Arabic,
    Devanagari,
    Bengali,
    Tamil,
    Thai,
    Lao,
    Myanmar,
    Khmer,
    Georgian,
    Hangul,
    /// Hiragana and katakana; Japanese text mixes them with [`Script::Han`] ideographs.
    Japanese,
    /// CJK ideographs.
    Han,
}

/// Every script, in the order of declaration (`script as usize` indexes it).
const ALL: [Script; 17] = [
    Script::Latin,
    Script::Cyrillic,
    Script::Greek,
    Script::Armenian,
    Script::Hebrew,
    Script::Arabic,
    Script::Devanagari,
    Script::Bengali,
    Script::Tamil,
    Script::Thai,
    Script::Lao,
    Script::Myanmar,
    Script::Khmer,
    Script::Georgian,
    Script::Hangul,
    Script::Japanese,
    Script::Han,
];

/// Unicode blocks of each script (first and last code point).
const BLOCKS: &[(u32, u32, Script)] = &[
    (0x0041, 0x024F, Script::Latin),
    (0x0370, 0x03FF, Script::Greek),
    (0x0400, 0x052F, Script::Cyrillic),
    (0x0530, 0x058F, Script::Armenian),
    (0x0590, 0x05FF, Script::Hebrew),
    (0x0600, 0x06FF, Script::Arabic),
    (0x0750, 0x077F, Script::Arabic),
    (0x0900, 0x097F, Script::Devanagari),
    (0x0980, 0x09FF, Script::Bengali),
    (0x0B80, 0x0BFF, Script::Tamil),
    (0x0E00, 0x0E7F, Script::Thai),
    (0x0E80, 0x0EFF, Script::Lao),
    (0x1000, 0x109F, Script::Myanmar),
    (0x10A0, 0x10FF, Script::Georgian),
    (0x1100, 0x11FF, Script::Hangul),
    (0x1780, 0x17FF, Script::Khmer),
    (0x1C90, 0x1CBF, Script::Georgian),
    (0x1E00, 0x1EFF, Script::Latin),
    (0x1F00, 0x1FFF, Script::Greek),
    (0x3040, 0x30FF, Script::Japanese),
    (0x3130, 0x318F, Script::Hangul),
    (0x3400, 0x4DBF, Script::Han),
    (0x4E00, 0x9FFF, Script::Han),
    (0xAC00, 0xD7AF, Script::Hangul),
    (0xF900, 0xFAFF, Script::Han),
    (0x20000, 0x2FFFF, Script::Han),
];

impl Script {
    /// The script of a character; `None` for digits, punctuation and scripts not listed.
    pub fn of(c: char) -> Option<Script> {
        let code = c as u32;
        let script = BLOCKS.iter().find(|&&(first, last, _)| (first..=last).contains(&code)).map(|&(.., s)| s);
        // Punctuation inside a script's block (Thai currency and paragraph signs, the katakana middle
        // dot, ASCII brackets) belongs to no script.
        let symbol = matches!(c, '\u{0E3F}' | '\u{0E4F}' | '\u{0E5A}' | '\u{0E5B}' | '\u{30FB}');
        let latin_non_letter = script == Some(Script::Latin) && !c.is_alphabetic();
        script.filter(|_| !symbol && !latin_non_letter)
    }

    /// The script most letters of `text` are written in; `None` if it has no letter of a known script.
    pub fn detect(text: &str) -> Option<Script> {
        // Counted in an array, not a map: retrieval detects the script of every query word.
        let mut counts = [0usize; ALL.len()];
        for script in text.chars().filter_map(Script::of) {
            counts[script as usize] += 1;
        }
        // Ties go to the script declared first (`max_by_key` keeps the last of equals).
        let (first, &count) = counts.iter().enumerate().rev().max_by_key(|&(_, count)| *count)?;
        (count > 0).then_some(ALL[first])
    }

    /// Whether the script writes names with a capital letter.
    pub fn has_case(self) -> bool {
        matches!(self, Script::Latin | Script::Cyrillic | Script::Greek | Script::Armenian)
    }

    /// Whether the script puts spaces between words. Thai, Lao, Myanmar and Khmer put them between
    /// phrases at most; Chinese and Japanese not at all.
    pub fn writes_spaces(self) -> bool {
        !matches!(self, Script::Thai | Script::Lao | Script::Myanmar | Script::Khmer | Script::Japanese | Script::Han)
    }
}

/// How a text opens: its first character other than a space is a digit, a letter (of a script listed
/// here, or `None`) or a mark (punctuation, a quote, a symbol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    Digit,
    Letter(Option<Script>),
    Mark,
}

impl Opening {
    /// How `text` opens; `None` when it is blank.
    pub fn of(text: &str) -> Option<Opening> {
        let first = text.chars().find(|c| !c.is_whitespace())?;
        Some(match first {
            c if c.is_numeric() => Opening::Digit,
            c if c.is_alphanumeric() => Opening::Letter(Script::of(c)),
            _ => Opening::Mark,
        })
    }

    /// Whether an answer opening as `other` is written as one opening as `self`: the same kind and
    /// script, Japanese kana and Han ideographs counting as one (Japanese mixes them).
    pub fn admits(self, other: Opening) -> bool {
        use Script::{Han, Japanese};
        match (self, other) {
            (Opening::Letter(Some(Japanese | Han)), Opening::Letter(Some(Japanese | Han))) => true,
            _ => self == other,
        }
    }
}

/// Whether `text` reads as a sentence to complete ("Marie Curie was born in the city of") rather than
/// a question: it ends without a question mark in a script whose questions end with one. `false` for
/// text ending in a script whose questions often go without (Thai, Lao, Khmer, Myanmar, Japanese): no
/// guess there.
pub fn is_completion(text: &str) -> bool {
    let text = text.trim_end();
    if text.is_empty() {
        return false;
    }
    let marked = question_mark(text).is_some() || text.contains('՞');
    // The script the text ends in: a Thai question may open with a name in Latin letters.
    let unmarked_questions = matches!(
        text.chars().rev().find_map(Script::of),
        Some(Script::Thai | Script::Lao | Script::Khmer | Script::Myanmar | Script::Japanese)
    );
    !marked && !unmarked_questions
}

/// The question mark `text` ends with (trailing spaces aside): `?`, and the full-width, Arabic, Greek
/// and reversed ones.
pub fn question_mark(text: &str) -> Option<char> {
    text.trim_end().chars().last().filter(|c| matches!(c, '?' | '？' | '؟' | ';' | '\u{037E}' | '⸮'))
}

/// Whether `text` ends with a mark that ends a sentence: a question mark, a full stop or an exclamation
/// mark, in any of the scripts above, before any closing quotes or brackets (`He said "no."`).
pub fn ends_sentence(text: &str) -> bool {
    let text = text.trim_end().trim_end_matches(['"', '\'', '”', '’', '»', '›', ')', ']', '）', '」', '』']);
    question_mark(text).is_some()
        || text.ends_with(['.', '!', '。', '！', '…', '।', '॥', '։', '။', '።', '፧', '\u{06D4}'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_written_script_wins_and_ties_go_to_the_first_declared() {
        for (index, script) in ALL.iter().enumerate() {
            assert_eq!(*script as usize, index);
        }
        assert_eq!(Script::detect("Шмавон Shmavonyan"), Some(Script::Latin));
        assert_eq!(Script::detect("ab где"), Some(Script::Cyrillic));
        assert_eq!(Script::detect("ab вг"), Some(Script::Latin));
        assert_eq!(Script::detect("2024 !"), None);
        assert_eq!(Script::detect(""), None);
    }

    #[test]
    fn question_and_sentence_marks_are_found_at_the_end() {
        assert_eq!(question_mark("Where was Marie Curie born? "), Some('?'));
        assert_eq!(question_mark("居里夫人出生在哪里？"), Some('？'));
        assert_eq!(question_mark("أين ولدت ماري كوري؟"), Some('؟'));
        assert_eq!(question_mark("Is it? No"), None);
        assert_eq!(question_mark(""), None);
        assert!(ends_sentence("Tell me where Marie Curie was born."));
        assert!(ends_sentence("居里夫人出生在巴黎。"));
        assert!(ends_sentence("मैरी क्यूरी कहाँ पैदा हुई थी।"));
        assert!(!ends_sentence("What is the genre of \"Foo\""));
        assert!(ends_sentence("It is called \"The Smelly Old History Society.\""));
        assert!(ends_sentence("他说：「好。」"));
        assert!(!ends_sentence("มารี กูรี เกิดที่ไหน"));
    }

    #[test]
    fn openings_are_the_first_character_other_than_a_space() {
        assert_eq!(Opening::of(" Lisbon"), Some(Opening::Letter(Some(Script::Latin))));
        assert_eq!(Opening::of(" ซานฟรานซิสโก"), Some(Opening::Letter(Some(Script::Thai))));
        assert_eq!(Opening::of("1812年战争"), Some(Opening::Digit));
        assert_eq!(Opening::of(" \"Heroes\""), Some(Opening::Mark));
        assert_eq!(Opening::of(" \n "), None);
        let japanese = Opening::of("サンフランシスコ").unwrap();
        assert!(japanese.admits(Opening::of("東京").unwrap()));
        assert!(!japanese.admits(Opening::of("San").unwrap()));
        assert!(!Opening::of("Сан").unwrap().admits(Opening::of("San").unwrap()));
        assert!(!Opening::Digit.admits(Opening::of("San").unwrap()));
        assert!(!Opening::of("San").unwrap().admits(Opening::Mark));
    }

    #[test]
    fn completions_are_told_from_questions() {
        for completion in
            ["Marie Curie was born in the city of", "Marie Curie wurde geboren in der Stadt ", "居里夫人出生于"]
        {
            assert!(is_completion(completion), "{completion}");
        }
        for question in [
            "Where was Marie Curie born?",
            "Wo wurde Marie Curie geboren ?",
            "居里夫人出生在哪里？",
            "أين ولدت ماري كوري؟",
            "Πού γεννήθηκε η Μαρί Κιουρί;",
            "Որտե՞ղ է ծնվել Մարի Կյուրին",
            "มารี กูรี เกิดที่ไหน",
            "Severus William Lynam Stretton ทำหน้าที่ในสงครามใด",
            "",
        ] {
            assert!(!is_completion(question), "{question}");
        }
    }

    #[test]
    fn characters_belong_to_their_script() {
        assert_eq!(Script::of('a'), Some(Script::Latin));
        assert_eq!(Script::of('ệ'), Some(Script::Latin));
        assert_eq!(Script::of('ж'), Some(Script::Cyrillic));
        assert_eq!(Script::of('ς'), Some(Script::Greek));
        assert_eq!(Script::of('ש'), Some(Script::Hebrew));
        assert_eq!(Script::of('ب'), Some(Script::Arabic));
        assert_eq!(Script::of('क'), Some(Script::Devanagari));
        assert_eq!(Script::of('ა'), Some(Script::Georgian));
        assert_eq!(Script::of('한'), Some(Script::Hangul));
        assert_eq!(Script::of('カ'), Some(Script::Japanese));
        assert_eq!(Script::of('中'), Some(Script::Han));
        for none in ['1', '?', '[', ' ', '\u{0E3F}', '\u{30FB}'] {
            assert_eq!(Script::of(none), None, "{none:?}");
        }
    }

    #[test]
    fn a_text_is_in_the_script_of_most_of_its_letters() {
        assert_eq!(Script::detect("Кто такой Shmavon?"), Some(Script::Cyrillic));
        assert_eq!(Script::detect("من هو محمد عبده؟"), Some(Script::Arabic));
        assert_eq!(Script::detect("東京はどこですか"), Some(Script::Japanese));
        assert_eq!(Script::detect("1999?"), None);
        assert!(Script::Hangul.writes_spaces() && !Script::Thai.writes_spaces());
    }
}
