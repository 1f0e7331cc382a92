//! Errors that point an analyst at the exact place in an experiment file.

use std::path::{Path, PathBuf};

/// A 1-based line and column in a file; `0:0` means "the file as a whole" (unreadable file,
/// missing folder), where no better place exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The whole file, for problems that have no place inside it.
    pub const FILE: Position = Position { line: 0, column: 0 };

    /// `line 5, column 16`, for messages that refer to a second place in the same file.
    pub fn describe(self) -> String {
        format!("line {}, column {}", self.line, self.column)
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem in one experiment file. `Display` is `file:line:col: message`, the format
/// editors and CI annotations recognise, so a `banditd validate` line is clickable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct SpecError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based, counted in characters; 0 when the problem concerns the whole file.
    pub column: usize,
    /// What is wrong and what to change, in an analyst's words.
    pub message: String,
}

impl SpecError {
    /// An error at `pos` in `file`.
    pub fn at(file: &Path, pos: Position, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    /// An error about the file as a whole (line 0, column 0).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Self::at(file, Position::FILE, message)
    }

    /// Where the error points.
    pub fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }
}

/// The most characters of an analyst's file that one message may quote. Why a bound: the
/// messages travel further than the file (the reload response, `GET /v1/admin/config`, the
/// log), so a file that is not an experiment at all (a secret linked or copied into the
/// folder by mistake) must not come out whole through them.
pub const MAX_EXCERPT_CHARS: usize = 80;

/// `text` as a message may show it: control characters, quotes and backslashes escaped (so it
/// cannot move a terminal's cursor or forge a log line), and cut to [`MAX_EXCERPT_CHARS`]
/// characters (escapes included) ending in `…` when longer. Without quotes, for callers that
/// put it between backticks.
pub fn excerpt(text: &str) -> String {
    let mut shown = String::new();
    let mut width = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let escaped = c.escape_debug();
        let w = escaped.len();
        let last = chars.peek().is_none();
        // Room for the ellipsis unless this is the final character.
        let room = if last {
            MAX_EXCERPT_CHARS
        } else {
            MAX_EXCERPT_CHARS - 1
        };
        if width + w > room {
            shown.push('…');
            break;
        }
        shown.extend(escaped);
        width += w;
    }
    shown
}

/// [`excerpt`] between double quotes: `"Build faster"`.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", excerpt(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_is_quoted_whole_with_escapes() {
        assert_eq!(quoted("Build faster"), "\"Build faster\"");
        assert_eq!(quoted("a\"b\nc"), "\"a\\\"b\\nc\"");
        assert_eq!(excerpt(&"x".repeat(80)), "x".repeat(80));
    }

    #[test]
    fn a_long_text_is_cut_to_80_characters_ending_in_an_ellipsis() {
        let shown = excerpt(&"y".repeat(10_000));
        assert_eq!(shown.chars().count(), MAX_EXCERPT_CHARS);
        assert!(shown.ends_with("y…"), "{shown}");
        // Escapes count too, and are never cut in half.
        let shown = excerpt(&"\u{1b}".repeat(100));
        assert!(shown.chars().count() <= MAX_EXCERPT_CHARS, "{shown}");
        assert!(shown.ends_with("\\u{1b}…"), "{shown}");
    }

    #[test]
    fn display_is_file_line_column_message() {
        let err = SpecError::at(
            Path::new("experiments/home.yaml"),
            Position {
                line: 14,
                column: 14,
            },
            "min_share is too large",
        );
        assert_eq!(
            err.to_string(),
            "experiments/home.yaml:14:14: min_share is too large"
        );
    }

    #[test]
    fn whole_file_errors_point_at_line_zero_column_zero() {
        let err = SpecError::whole_file(Path::new("x.yaml"), "cannot read");
        assert_eq!((err.line, err.column), (0, 0));
        assert_eq!(err.to_string(), "x.yaml:0:0: cannot read");
    }
}
