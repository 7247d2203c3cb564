//! Terminal styling for verdict tables: ANSI colour only when the stream is a terminal and
//! `NO_COLOR` is unset (https://no-color.org), so files and CI logs stay plain.

use std::io::IsTerminal;

/// Whether to colour output written to stdout.
pub fn stdout_wants_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Muted,
}

/// `text`, coloured by `tone` when `colour` is on.
pub fn paint(text: &str, tone: Tone, colour: bool) -> String {
    if !colour {
        return text.to_owned();
    }
    let code = match tone {
        Tone::Good => "32",
        Tone::Bad => "31;1",
        Tone::Muted => "33",
    };
    format!("\u{1b}[{code}m{text}\u{1b}[0m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paints_only_when_asked() {
        assert_eq!(paint("PASS", Tone::Good, false), "PASS");
        assert_eq!(paint("FAIL", Tone::Bad, true), "\u{1b}[31;1mFAIL\u{1b}[0m");
    }
}
