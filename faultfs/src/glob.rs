//! Path patterns for `corrupt-pick`: `*` matches any run of characters
//! within one path component, `?` one character other than `/`, `**` any
//! run of characters including `/`; every other character stands for
//! itself. Patterns and paths are taken without a leading `/`.

/// Whether `path` (relative to the mount's root) matches `pattern`.
///
/// Dynamic programming over (pattern position, path position), so a
/// pattern of many stars costs `O(pattern × path)`, never backtracking.
pub fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<Token> = tokens(pattern.trim_start_matches('/'));
    let path: Vec<char> = path.trim_start_matches('/').chars().collect();
    // reach[j]: the pattern's first i tokens can match the path's first j chars.
    let mut reach = vec![false; path.len() + 1];
    reach[0] = true;
    for token in &pattern {
        let mut next = vec![false; path.len() + 1];
        for j in 0..=path.len() {
            match token {
                Token::Literal(c) => next[j] = j > 0 && reach[j - 1] && path[j - 1] == *c,
                Token::One => next[j] = j > 0 && reach[j - 1] && path[j - 1] != '/',
                Token::Star => {
                    next[j] = reach[j] || (j > 0 && next[j - 1] && path[j - 1] != '/');
                }
                Token::Stars => next[j] = reach[j] || (j > 0 && next[j - 1]),
            }
        }
        reach = next;
    }
    reach[path.len()]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**`
    Stars,
}

fn tokens(pattern: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' if chars.peek() == Some(&'*') => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                Token::Stars
            }
            '*' => Token::Star,
            '?' => Token::One,
            c => Token::Literal(c),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_stay_in_a_component_and_double_stars_cross_them() {
        let table = [
            ("wal.log*", "wal.log", true),
            ("wal.log*", "wal.log.12", true),
            ("/wal.log*", "/wal.log.3", true),
            ("wal.log*", "snapshot.bin", false),
            ("blocks.?", "blocks.7", true),
            ("blocks.?", "blocks.17", false),
            ("*", "sub/f", false),
            ("*/f", "sub/f", true),
            ("**", "a/b/c", true),
            ("**/c", "a/b/c", true),
            ("a/**", "a/b/c", true),
            ("**.bin", "d/snapshot.bin", true),
            ("snapshot.bin", "snapshot.bin", true),
            ("snapshot.bin", "snapshot.bin2", false),
            ("*a*a*a*a*a*a*a*b", &"a".repeat(40), false),
            ("", "", true),
            ("", "x", false),
        ];
        for (pattern, path, expected) in table {
            assert_eq!(matches(pattern, path), expected, "{pattern} vs {path}");
        }
    }
}
