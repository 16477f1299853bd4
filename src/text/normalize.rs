//! Spellings for comparing words across spelling conventions: NFKC, lowercase, without optional
//! marks, diacritics stripped, Cyrillic, Greek, Armenian and Georgian romanized, transliteration
//! variants merged, Thai letters of one sound merged, katakana as hiragana.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

use unicode_normalization_alignments::char::decompose_canonical;
use unicode_normalization_alignments::UnicodeNormalization;

use super::tokens::{Token, TokenKind};

/// The text in NFKC (decomposed input composed: Vietnamese or Hangul typed as letters and marks,
/// Tamil two-part vowels; compatibility forms unified: half-width kana, full-width Latin, ligatures),
/// lowercased, without the marks that only some writers put (combining accents, Hebrew niqqud and
/// cantillation, Arabic harakat, tatweel, Devanagari and Bengali nukta, invisible joiners), native
/// digits as ASCII.
pub fn lowercase_chars(text: &str) -> impl Iterator<Item = char> + '_ {
    lowercase_chars_located(text).map(|lowered| lowered.c)
}

/// A character of [`lowercase_chars_located`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoweredChar {
    pub c: char,
    /// Whether it was an uppercase letter: names are capitalized in the scripts that have case.
    pub upper: bool,
    /// The bytes of the text it comes from (a character composed of several, or several made of
    /// one, share them).
    pub source: Range<usize>,
}

/// [`lowercase_chars`], each character with whether it was uppercase and where in `text` it was.
pub fn lowercase_chars_located(text: &str) -> impl Iterator<Item = LoweredChar> + '_ {
    // Each NFKC character tells how many characters of the text it stands for: one minus its change
    // (0 for a character a decomposition added: it belongs to the one before).
    let mut position = 0;
    let mut last = 0..0;
    let located = text.nfkc().map(move |(c, change)| {
        let start = position;
        for _ in 0..(1 - change).max(0) {
            position += text[position..].chars().next().map_or(0, char::len_utf8);
        }
        if position > start {
            last = start..position;
        }
        (c, last.clone())
    });
    let lowered = located.flat_map(|(c, source)| {
        let upper = c.is_uppercase();
        c.to_lowercase().map(move |lower| LoweredChar { c: lower, upper, source: source.clone() })
    });
    // Whether each is kept: a mark left out is counted in the source of the character before it.
    let mut kept = lowered
        .map(|lowered| {
            let code = lowered.c as u32;
            match code {
                0x0300..=0x036F | 0x0591..=0x05C7 | 0x064B..=0x065F | 0x0670 | 0x0640 | 0x093C | 0x09BC => {
                    (lowered, false)
                }
                0x00AD | 0x200B..=0x200D | 0x2060 | 0xFEFF => (lowered, false),
                0x0E50..=0x0E59 | 0x0660..=0x0669 | 0x06F0..=0x06F9 => {
                    let digit = char::from_u32('0' as u32 + (code & 0xF)).unwrap_or(lowered.c);
                    (LoweredChar { c: digit, upper: false, ..lowered }, true)
                }
                _ => (lowered, true),
            }
        })
        .peekable();
    std::iter::from_fn(move || loop {
        let (mut lowered, true) = kept.next()? else { continue };
        while let Some((left_out, false)) = kept.peek() {
            lowered.source.end = lowered.source.end.max(left_out.source.end);
            kept.next();
        }
        return Some(lowered);
    })
}

/// A lowercase word without diacritics: each letter that decomposes into a base letter and accents
/// (Latin, Greek, Cyrillic "й", Arabic hamza forms, letters with nukta) as its base letter, the
/// letters that do not decompose by the table below, and the viramas of Indic scripts dropped (one
/// name is written with or without an explicit vowel-less consonant).
pub fn strip_diacritics(word: &str) -> String {
    let mut stripped = String::with_capacity(word.len());
    for c in word.chars().map(base_letter) {
        if let Some(spelling) = DIACRITIC_FREE.get(&c) {
            stripped.push_str(spelling);
        } else if !matches!(c, '\u{094D}' | '\u{09CD}' | '\u{0BCD}') {
            stripped.push(c);
        }
    }
    stripped
}

/// The letter `c` is built on when its canonical decomposition is that letter plus accents; else `c`.
fn base_letter(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    let mut parts = Vec::with_capacity(3);
    decompose_canonical(c, |part| parts.push(part));
    match parts[..] {
        [base, ref marks @ ..] if !marks.is_empty() && marks.iter().all(|m| is_accent(*m)) => base,
        _ => c,
    }
}

/// Marks that accent a letter rather than spell a sound of their own.
fn is_accent(mark: char) -> bool {
    matches!(mark as u32, 0x0300..=0x036F | 0x0653..=0x0655 | 0x093C | 0x09BC | 0x3099 | 0x309A)
}

/// A word without diacritics with Cyrillic, Greek, Armenian and Georgian letters spelled in Latin
/// ones, so that a name matches across scripts ("Бушры" and "Bushra", "Хантавади" and "Hanthawaddy").
fn romanize(word: &str) -> String {
    replace_letters(word, &ROMANIZED)
}

/// The Latin spelling of one Cyrillic, Greek, Armenian or Georgian letter, as [`romanize`] spells it.
pub(super) fn romanized(c: char) -> Option<&'static str> {
    ROMANIZED.get(&c).copied()
}

/// `word` with each letter that `table` has replaced by its spelling there.
fn replace_letters(word: &str, table: &HashMap<char, &'static str>) -> String {
    let mut replaced = String::with_capacity(word.len());
    for c in word.chars() {
        match table.get(&c) {
            Some(spelling) => replaced.push_str(spelling),
            None => replaced.push(c),
        }
    }
    replaced
}

/// Cyrillic, Greek, Armenian and Georgian letters (as `strip_diacritics` leaves them) -> Latin
/// letters, one word per letter.
static ROMANIZED: LazyLock<HashMap<char, &'static str>> = LazyLock::new(|| {
    const CYRILLIC: (&str, &str) =
        ("абвгдежзиклмнопрстуфхцчшщыэюяє", "a b v g d e zh z i k l m n o p r s t u f kh ts ch sh shch y e yu ya ye");
    const GREEK: (&str, &str) = ("αβγδεζηθικλμνξοπρστυφχψω", "a v g d e z i th i k l m n x o p r s t y f ch ps o");
    const ARMENIAN: (&str, &str) = (
        "աբգդեզէըթժիլխծկհձղճմյնշոչպջռսվտրցւփքօֆ",
        "a b g d e z e e t zh i l kh ts k h dz gh ch m y n sh o ch p j r s v t r ts u p k o f",
    );
    const GEORGIAN: (&str, &str) = (
        "აბგდევზთიკლმნოპჟრსტუფქღყშჩცძწჭხჯჰ",
        "a b g d e v z t i k l m n o p zh r s t u p k gh q sh ch ts dz ts ch kh j h",
    );
    let tables = [CYRILLIC, GREEK, ARMENIAN, GEORGIAN];
    let pairs = tables.into_iter().flat_map(|(letters, latin)| letters.chars().zip(latin.split(' ')));
    pairs.collect()
});

/// Letters with diacritics that do not decompose -> base letters; Cyrillic letters that other
/// Cyrillic languages write for the same sound; Arabic letter variants (alif
/// maqsura, teh marbuta, Persian and Urdu yeh, kaf and heh) -> the plain Arabic letter; Greek final
/// sigma -> sigma.
static DIACRITIC_FREE: LazyLock<HashMap<char, &'static str>> = LazyLock::new(|| {
    const FOLDS: &[(&str, &str)] = &[
        ("đð", "d"),
        ("ґ", "г"),
        // Ukrainian and Belarusian і is Russian и in one name ("Іван", "Иван").
        ("і", "и"),
        ("ħ", "h"),
        ("ı", "i"),
        ("ł", "l"),
        ("ø", "o"),
        ("ŧ", "t"),
        ("ß", "ss"),
        ("æ", "ae"),
        ("œ", "oe"),
        ("þ", "th"),
        ("ς", "σ"),
        ("ٱ", "ا"),
        ("ىیے", "ي"),
        ("ةۀہھ", "ه"),
        ("ک", "ك"),
    ];
    FOLDS.iter().flat_map(|(from, to)| from.chars().map(move |c| (c, *to))).collect()
});

/// Spelling that transliterations of one name share. Words: no diacritics, no doubled letters,
/// sh/ch/sch -> s, y -> i, w -> v, ph -> f, no soft/hard signs ("Shmavonyan", "Chmavonian" and
/// "Šmavonyan" agree), `latin`: Cyrillic, Greek, Armenian and Georgian in Latin letters. Runs: see
/// `loose_thai`.
pub fn loose_spelling(token: &Token, latin: bool) -> Vec<char> {
    match token.kind {
        TokenKind::Number => return token.text.chars().collect(),
        TokenKind::Run => return loose_thai(&token.text),
        TokenKind::Word => {}
    }
    let folded = strip_diacritics(&token.text);
    let mut letters: Vec<char> = if latin { romanize(&folded) } else { folded }.chars().collect();
    letters.dedup();
    let replaced = String::from_iter(letters)
        .replace("kh", "h")
        .replace("zh", "z")
        .replace("sch", "s")
        .replace("sh", "s")
        .replace("ch", "s")
        .replace("ph", "f")
        .replace('y', "i")
        .replace('w', "v")
        .replace(['ь', 'ъ'], "");
    replaced.chars().collect()
}

/// Whether a word has letters only Vietnamese uses (ơ, ư, vowels with a tone mark and another mark).
pub fn is_vietnamese(word: &str) -> bool {
    word.chars().any(|c| matches!(c, 'ơ' | 'ư' | '\u{1EA0}'..='\u{1EF9}'))
}

/// Thai writes most sounds with several letters and marks silent ones: transliterations of one name
/// pick different letters ("โคโลบาร์ นุนาตัก", "โกโลบาร์ นุนาทักษ์"). Letters of one sound become one,
/// short and long vowels one, tone marks and silent letters go. Katakana becomes hiragana; other
/// scripts are left as they are.
fn loose_thai(text: &str) -> Vec<char> {
    const SOUNDS: &[(&str, char)] = &[
        ("กขฃคฅฆ", 'ก'),
        ("จฉชฌ", 'ช'),
        ("ซศษส", 'ส'),
        ("ดฎ", 'ด'),
        ("ตฏฐถทธฑฒ", 'ท'),
        ("ปพภผ", 'พ'),
        ("ฝฟ", 'ฟ'),
        ("นณ", 'น'),
        ("ลฬ", 'ล'),
        ("ยญ", 'ย'),
        ("หฮ", 'ห'),
    ];
    let mut loose: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // Mai taikhu and tone marks.
            '\u{0E47}'..='\u{0E4B}' => {}
            // Thanthakhat silences the letter before it.
            '\u{0E4C}' => {
                loose.pop();
            }
            // Short vowels are written as their long pairs; sara a goes.
            '\u{0E30}' => {}
            '\u{0E31}' => loose.push('\u{0E32}'),
            '\u{0E35}' => loose.push('\u{0E34}'),
            '\u{0E37}' => loose.push('\u{0E36}'),
            '\u{0E39}' => loose.push('\u{0E38}'),
            '\u{0E01}'..='\u{0E2E}' => {
                loose.push(SOUNDS.iter().find(|(letters, _)| letters.contains(c)).map_or(c, |&(_, sound)| sound));
            }
            // Katakana as hiragana: a name may be written in either.
            '\u{30A1}'..='\u{30F6}' => loose.push(char::from_u32(c as u32 - 0x60).unwrap_or(c)),
            _ => loose.push(c),
        }
    }
    loose
}

/// Whether `text` holds `part` as written, in any letter case.
pub fn contains_ignoring_case(text: &str, part: &str) -> bool {
    text.to_lowercase().contains(&part.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loose(text: &str) -> String {
        let kind =
            if text.chars().any(|c| matches!(c, '\u{3040}'..='\u{30FF}')) { TokenKind::Run } else { TokenKind::Word };
        let text: String = lowercase_chars(text).collect();
        loose_spelling(&Token { kind, text }, false).into_iter().collect()
    }

    #[test]
    fn variant_letters_and_marks_spell_alike() {
        assert_eq!(loose("أحـمد"), loose("احمد"));
        assert_eq!(loose("مُحَمَّد"), loose("محمد"));
        assert_eq!(loose("شوقى"), loose("شوقي"));
        assert_eq!(loose("کتاب"), loose("كتاب"));
        assert_eq!(loose("שָׁלוֹם"), loose("שלום"));
        assert_eq!(loose("Καζαντζάκης"), loose("ΚΑΖΑΝΤΖΑΚΗΣ"));
        assert_eq!(loose("ग़ालिब"), loose("\u{095A}ालिब"));
        assert_eq!(loose("キュリー"), loose("きゅりー"));
    }

    #[test]
    fn every_character_knows_where_in_the_text_it_was() {
        let sources = |text: &'static str| -> Vec<(char, &'static str)> {
            lowercase_chars_located(text).map(|l| (l.c, &text[l.source])).collect()
        };
        // Composed from a letter and a mark typed apart; a ligature made two; a mark some leave out.
        assert_eq!(sources("Cre\u{300}me"), [('c', "C"), ('r', "r"), ('è', "e\u{300}"), ('m', "m"), ('e', "e")]);
        assert_eq!(sources("ﬁÉ"), [('f', "ﬁ"), ('i', "ﬁ"), ('é', "É")]);
        assert_eq!(sources("שָׁם ١"), [('ש', "שָׁ"), ('ם', "ם"), (' ', " "), ('1', "١")]);
        assert!(lowercase_chars_located("Ab").map(|l| l.upper).eq([true, false]));
    }
}
