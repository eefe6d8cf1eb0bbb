//! Reading one Rust source file for the module paths it names: comments,
//! string and char literals blanked out, `#[cfg(test)]` items dropped
//! (tests may reach anywhere), then every `use` tree expanded into its
//! paths and every other path taken as written.

/// A path named in a file, as written (`["crate", "run", "run_test"]`,
/// `["super", "image", "ensure_image"]`, `["process", "Process"]`), with
/// the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The path's segments.
    pub path: Vec<String>,
    /// Its line, 1-based.
    pub line: usize,
}

/// The paths a file names outside comments, literals and test items, and
/// the `crate::`, `super::` and `self::` paths its doc comments name
/// (rustdoc resolves those links: a doc names what it links to).
pub fn paths_named(text: &str) -> Vec<Named> {
    let code = drop_test_items(&blank_comments_and_literals(text));
    let mut out = code_paths(&tokens(&code), true);
    let docs = code_paths(&tokens(&doc_comments(text)), false);
    out.extend(
        docs.into_iter()
            .filter(|n| matches!(n.path[0].as_str(), "crate" | "super" | "self")),
    );
    out
}

/// Only the text of doc comments (`///`, `//!`), everything else blank,
/// lines kept.
fn doc_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(doc) = t.strip_prefix("///").or_else(|| t.strip_prefix("//!")) {
            out.push_str(doc);
        }
        out.push('\n');
    }
    out
}

/// The paths in a token stream, as written; with `expand_use`, `use`
/// trees expanded (not in prose, where "use" is a word).
fn code_paths(tokens: &[Token], expand_use: bool) -> Vec<Named> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if expand_use && tokens[i].text == "use" {
            let mut j = i + 1;
            let line = tokens[i].line;
            for path in use_tree(tokens, &mut j, Vec::new()) {
                out.push(Named { path, line });
            }
            i = j;
            continue;
        }
        let starts_path = is_ident(&tokens[i].text)
            && tokens.get(i + 1).is_some_and(|t| t.text == "::")
            && (i == 0 || tokens[i - 1].text != "::");
        if starts_path {
            let line = tokens[i].line;
            let mut path = vec![tokens[i].text.clone()];
            let mut j = i + 1;
            while j + 1 < tokens.len() && tokens[j].text == "::" && is_ident(&tokens[j + 1].text) {
                path.push(tokens[j + 1].text.clone());
                j += 2;
            }
            out.push(Named { path, line });
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// One token: an identifier, `::`, or one other character.
#[derive(Debug, Clone)]
struct Token {
    text: String,
    line: usize,
}

fn is_ident(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            out.push(Token { text, line });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

/// Expands the use tree at `tokens[*at]` (after `use`, or inside a group)
/// into full paths, each prefixed by `prefix`; leaves `*at` after the tree
/// (past the `;` at the top level).
fn use_tree(tokens: &[Token], at: &mut usize, prefix: Vec<String>) -> Vec<Vec<String>> {
    let mut path = prefix;
    let mut out = Vec::new();
    while let Some(t) = tokens.get(*at) {
        match t.text.as_str() {
            "::" => *at += 1,
            "{" => {
                *at += 1;
                loop {
                    out.extend(use_tree(tokens, at, path.clone()));
                    match tokens.get(*at).map(|t| t.text.as_str()) {
                        Some(",") => *at += 1,
                        Some("}") => {
                            *at += 1;
                            break;
                        }
                        _ => return out,
                    }
                    if tokens.get(*at).is_some_and(|t| t.text == "}") {
                        *at += 1;
                        break;
                    }
                }
                return out;
            }
            "as" => *at += 2,
            "*" => *at += 1,
            ";" => {
                *at += 1;
                break;
            }
            "," | "}" => break,
            word if is_ident(word) => {
                path.push(word.to_string());
                *at += 1;
            }
            _ => {
                *at += 1;
                break;
            }
        }
    }
    if !path.is_empty() && path.last().is_some_and(|s| s != "self") {
        out.push(path);
    } else if path.len() > 1 {
        // `a::b::{self}` names `a::b`.
        path.pop();
        out.push(path);
    }
    out
}

/// The text with every comment, string literal and char literal replaced
/// by spaces, newlines kept (so lines still count).
pub fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let end = match literal_or_comment_end(&chars, i) {
            Some(end) => end,
            None => {
                out.push(chars[i]);
                i += 1;
                continue;
            }
        };
        for c in &chars[i..end.min(chars.len())] {
            out.push(if *c == '\n' { '\n' } else { ' ' });
        }
        i = end;
    }
    out
}

/// Where the comment or literal starting at `i` ends (one past it), or
/// `None` when none starts there.
fn literal_or_comment_end(chars: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| chars.get(k).copied();
    let after_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    match (chars[i], at(i + 1)) {
        ('/', Some('/')) => Some(
            (i..chars.len())
                .find(|k| chars[*k] == '\n')
                .unwrap_or(chars.len()),
        ),
        ('/', Some('*')) => Some(block_comment_end(chars, i)),
        ('"', _) => Some(string_end(chars, i + 1)),
        ('b', Some('"')) if !after_ident => Some(string_end(chars, i + 2)),
        ('r', Some('"' | '#')) if !after_ident => raw_string_end(chars, i + 1),
        ('b', Some('r')) if !after_ident => raw_string_end(chars, i + 2),
        ('\'', _) => char_literal_end(chars, i),
        ('b', Some('\'')) if !after_ident => char_literal_end(chars, i + 1),
        _ => None,
    }
}

fn block_comment_end(chars: &[char], start: usize) -> usize {
    let (mut depth, mut k) = (0usize, start);
    while k + 1 < chars.len() {
        if chars[k] == '/' && chars[k + 1] == '*' {
            depth += 1;
            k += 2;
        } else if chars[k] == '*' && chars[k + 1] == '/' {
            depth -= 1;
            k += 2;
            if depth == 0 {
                return k;
            }
        } else {
            k += 1;
        }
    }
    chars.len()
}

/// One past the `"` closing a string whose contents start at `k`.
fn string_end(chars: &[char], mut k: usize) -> usize {
    while k < chars.len() {
        match chars[k] {
            '\\' => k += 2,
            '"' => return k + 1,
            _ => k += 1,
        }
    }
    chars.len()
}

/// A raw string whose `#`s or `"` start at `k`: one past its end, or
/// `None` when it is no raw string (an identifier `r#type`).
fn raw_string_end(chars: &[char], k: usize) -> Option<usize> {
    let hashes = chars[k..].iter().take_while(|c| **c == '#').count();
    if chars.get(k + hashes) != Some(&'"') {
        return None;
    }
    let mut j = k + hashes + 1;
    while j < chars.len() {
        if chars[j] == '"'
            && chars[j + 1..]
                .iter()
                .take(hashes)
                .filter(|c| **c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

/// A char literal at the `'` at `k`: one past its end; `None` for a
/// lifetime (`'a` with no closing quote).
fn char_literal_end(chars: &[char], k: usize) -> Option<usize> {
    match (chars.get(k + 1), chars.get(k + 2)) {
        (Some('\\'), _) => {
            let close = (k + 3..chars.len()).find(|j| chars[*j] == '\'')?;
            Some(close + 1)
        }
        (Some(_), Some('\'')) => Some(k + 3),
        _ => None,
    }
}

/// Replaces every item under `#[cfg(test)]` (a `mod tests { … }`, a
/// `use …;`, a function) by spaces, newlines kept.
fn drop_test_items(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut chars: Vec<char> = code.chars().collect();
    let text: String = code.to_string();
    let mut from = 0;
    while let Some(found) = text[from..].find(MARK) {
        let start_byte = from + found;
        let start = text[..start_byte].chars().count();
        let end = item_end(&chars, start + MARK.chars().count());
        for c in chars.iter_mut().take(end).skip(start) {
            if *c != '\n' {
                *c = ' ';
            }
        }
        from = start_byte + MARK.len();
    }
    chars.into_iter().collect()
}

/// One past the end of the item that starts at or after `k`: its `;` at
/// depth 0, or the `}` closing its first `{`.
fn item_end(chars: &[char], mut k: usize) -> usize {
    let mut depth = 0i32;
    while k < chars.len() {
        match chars[k] {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ';' if depth == 0 => return k + 1,
            '{' if depth == 0 => {
                let mut braces = 0;
                for (j, c) in chars.iter().enumerate().skip(k) {
                    match c {
                        '{' => braces += 1,
                        '}' => {
                            braces -= 1;
                            if braces == 0 {
                                return j + 1;
                            }
                        }
                        _ => {}
                    }
                }
                return chars.len();
            }
            _ => {}
        }
        k += 1;
    }
    chars.len()
}
