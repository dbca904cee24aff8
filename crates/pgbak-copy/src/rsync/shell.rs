//! Shell words: splitting an operator's `ssh_command` the way `sh` would, and quoting words so
//! that a shell (rsync's `-e` parser, the remote login shell) reads them back unchanged.

/// Splits `text` into words like a POSIX shell without expansions: blanks separate words,
/// `'...'` is literal, `"..."` keeps blanks and honours `\"`, `\\`, `\$` and `` \` ``, and a
/// backslash outside quotes escapes the next character.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated single quote in {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                            Some('\n') => {}
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err(format!("unterminated double quote in {text:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated double quote in {text:?}")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(e) => {
                    in_word = true;
                    word.push(e);
                }
                None => return Err(format!("trailing backslash in {text:?}")),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Quotes `word` for a POSIX shell: unchanged when it holds only safe characters, else in single
/// quotes (with each `'` written as `'\''`).
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'/' | b',' | b':' | b'=' | b'@' | b'+' | b'%'
                )
        });
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Quotes each word and joins them with spaces.
pub fn join(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_like_sh() {
        assert_eq!(
            split_words("ssh -p 2222  -o 'ProxyCommand=nc %h %p' postgres@pg1").unwrap(),
            vec![
                "ssh",
                "-p",
                "2222",
                "-o",
                "ProxyCommand=nc %h %p",
                "postgres@pg1"
            ]
        );
        assert_eq!(
            split_words(r#"a"b c"\ d "x\"y" ''"#).unwrap(),
            vec!["ab c d", "x\"y", ""]
        );
        assert!(split_words("ssh 'unterminated").is_err());
        assert!(split_words("ssh \"unterminated").is_err());
        assert!(split_words("ssh \\").is_err());
        assert!(split_words("   ").unwrap().is_empty());
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("/var/lib/pgsql"), "/var/lib/pgsql");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$HOME"), "'$HOME'");
    }

    proptest! {
        #[test]
        fn quote_then_split_is_identity(words in proptest::collection::vec(".{0,12}", 1..6)) {
            let line = join(&words);
            prop_assert_eq!(split_words(&line).unwrap(), words);
        }
    }
}
