//! Closed vocabularies: [`words!`] declares an enum whose every variant is spelled once, with
//! `ALL` (every variant, in order), `as_str`, `Display` and `FromStr` derived from that one list,
//! so that a writer and a reader cannot disagree on a word.

/// `words! { /// doc  pub enum Name { /// doc  Variant => "spelling", ... } }` declares `Name`
/// (`Debug, Clone, Copy, PartialEq, Eq, Hash`) with:
/// - `Name::ALL`: every variant, in declaration order;
/// - `EXPECTED`: `one of:` and every spelling, for error messages;
/// - `as_str()`: its spelling; `Display` writes it;
/// - `FromStr`: the variant of a spelling, or a [`crate::words::UnknownWord`] naming the set.
macro_rules! words {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $spelling:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// What a reader expects: `one of: <every spelling>`.
            pub const EXPECTED: &'static str = concat!("one of:", $(" ", $spelling),+);

            /// The variant's spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $spelling,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`: a width or alignment in the format applies.
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::words::UnknownWord;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|w| w.as_str() == s)
                    .ok_or_else(|| $crate::words::UnknownWord {
                        word: s.chars().take(80).collect(),
                        expected: Self::EXPECTED,
                    })
            }
        }
    };
}
pub(crate) use words;

/// A word outside its vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown word {word:?}, expected {expected}")]
pub struct UnknownWord {
    /// The word found (at most 80 characters of it).
    pub word: String,
    /// `one of: ` and the spellings of the vocabulary.
    pub expected: &'static str,
}

/// Serde through the spelling: `serde_words!(Name)` makes `Name` serialise as its word and
/// deserialise from it (an unknown word is an error naming the set).
macro_rules! serde_words {
    ($name:ident) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                word.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_words;

/// Asserts that every variant of a [`words!`] enum spells a distinct word that parses back to
/// itself (for the vocabularies' unit tests).
#[cfg(test)]
pub(crate) fn assert_round_trip<W>(all: &[W])
where
    W: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + std::str::FromStr,
    W::Err: std::fmt::Debug,
{
    let mut seen = std::collections::HashSet::new();
    for &w in all {
        let word = w.to_string();
        assert!(seen.insert(word.clone()), "{word:?} spelled twice");
        assert_eq!(word.parse::<W>().unwrap(), w, "{word:?}");
    }
    assert!("no such word".parse::<W>().is_err());
}

#[cfg(test)]
mod tests {
    use super::*;

    words! {
        /// A test vocabulary.
        enum Colour {
            Red => "red",
            /// Documented.
            Green => "green",
        }
    }
    serde_words!(Colour);

    #[test]
    fn words_round_trip_and_unknown_words_name_the_set() {
        assert_round_trip(Colour::ALL);
        assert_eq!(Colour::ALL, [Colour::Red, Colour::Green]);
        let e = "blue".parse::<Colour>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown word \"blue\", expected one of: red green"
        );
        assert_eq!(serde_json::to_string(&Colour::Green).unwrap(), "\"green\"");
        assert_eq!(
            serde_json::from_str::<Colour>("\"red\"").unwrap(),
            Colour::Red
        );
        assert!(serde_json::from_str::<Colour>("\"blue\"").is_err());
    }
}
