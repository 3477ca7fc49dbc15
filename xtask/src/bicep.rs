//! Checks of `infra-bicep/` that need no Bicep CLI: a small tokenizer that understands
//! enough Bicep (comments, strings with `${}` interpolation, brackets) for the tests in
//! `bicep/tests.rs` to compare the infrastructure with the code, and the `pycep-parser` run
//! that `cargo xtask test` ends with.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The pinned `pycep-parser` (PyPI): a Bicep grammar in Python, the closest thing to the
/// Bicep CLI that installs everywhere.
pub(crate) const PYCEP_VERSION: &str = "0.7.1";

/// A token of Bicep source. A string keeps its text with escapes resolved; the inside of a
/// `${...}` is kept as written, not tokenized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    Ident(String),
    Str { text: String, interpolated: bool },
    Num(String),
    Punct(char),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) line: usize,
}

/// Splits Bicep source into tokens, dropping comments. Fails on an unterminated string or
/// comment.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let start = line;
                i += 2;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("line {start}: unterminated /* comment")),
                        Some('*') if chars.get(i + 1) == Some(&'/') => {
                            i += 2;
                            break;
                        }
                        Some('\n') => {
                            line += 1;
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            '\'' if chars.get(i + 1) == Some(&'\'') && chars.get(i + 2) == Some(&'\'') => {
                // A multi-line string: no escapes, no interpolation.
                let start = line;
                i += 3;
                let begin = i;
                loop {
                    if i >= chars.len() {
                        return Err(format!("line {start}: unterminated ''' string"));
                    }
                    if chars[i] == '\''
                        && chars.get(i + 1) == Some(&'\'')
                        && chars.get(i + 2) == Some(&'\'')
                    {
                        break;
                    }
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                let text: String = chars[begin..i].iter().collect();
                i += 3;
                out.push(Token {
                    tok: Tok::Str {
                        text,
                        interpolated: false,
                    },
                    line: start,
                });
            }
            '\'' => {
                let start = line;
                let (end, text, interpolated) = scan_string(&chars, i, &mut line)?;
                i = end;
                out.push(Token {
                    tok: Tok::Str { text, interpolated },
                    line: start,
                });
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                let begin = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                // `$` alone is not an identifier character in Bicep.
                if i == begin {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(chars[begin..i].iter().collect()),
                    line,
                });
            }
            c if c.is_ascii_digit() => {
                let begin = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Num(chars[begin..i].iter().collect()),
                    line,
                });
            }
            c => {
                out.push(Token {
                    tok: Tok::Punct(c),
                    line,
                });
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Scans the string that starts at `chars[start]` (a `'`), through interpolations (which
/// may hold strings of their own). Returns the index after it, its text and whether it
/// interpolates.
fn scan_string(
    chars: &[char],
    start: usize,
    line: &mut usize,
) -> Result<(usize, String, bool), String> {
    let first_line = *line;
    let mut i = start + 1;
    let mut text = String::new();
    let mut interpolated = false;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(format!("line {first_line}: unterminated string"));
        };
        match c {
            '\'' => return Ok((i + 1, text, interpolated)),
            '\n' => return Err(format!("line {first_line}: string not closed on its line")),
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err(format!("line {first_line}: unterminated string"));
                };
                text.push(match next {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    other => other,
                });
                i += 2;
            }
            '$' if chars.get(i + 1) == Some(&'{') => {
                interpolated = true;
                text.push_str("${");
                i += 2;
                let mut depth = 1;
                while depth > 0 {
                    let Some(&c) = chars.get(i) else {
                        return Err(format!("line {first_line}: unterminated ${{...}}"));
                    };
                    match c {
                        '\'' => {
                            let (end, _, _) = scan_string(chars, i, line)?;
                            text.extend(&chars[i..end]);
                            i = end;
                            continue;
                        }
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        '\n' => *line += 1,
                        _ => {}
                    }
                    text.push(c);
                    i += 1;
                }
            }
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
}

/// Checks that `(`, `[` and `{` outside strings and comments are closed in order.
pub(crate) fn check_balance(tokens: &[Token]) -> Result<(), String> {
    let mut open: Vec<(char, usize)> = Vec::new();
    for t in tokens {
        let Tok::Punct(c) = t.tok else { continue };
        match c {
            '(' | '[' | '{' => open.push((c, t.line)),
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match open.pop() {
                    Some((o, _)) if o == want => {}
                    Some((o, l)) => {
                        return Err(format!(
                            "line {}: {c:?} closes {o:?} opened on line {l}",
                            t.line
                        ));
                    }
                    None => return Err(format!("line {}: {c:?} closes nothing", t.line)),
                }
            }
            _ => {}
        }
    }
    match open.last() {
        Some((o, l)) => Err(format!("{o:?} opened on line {l} is never closed")),
        None => Ok(()),
    }
}

/// The tokens of a bracketed group starting at `tokens[start]` (an opening bracket),
/// brackets included.
#[cfg(test)]
fn group(tokens: &[Token], start: usize) -> Option<&[Token]> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(start) {
        match t.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(&tokens[start..=i]);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
fn is_ident(t: &Token, name: &str) -> bool {
    matches!(&t.tok, Tok::Ident(n) if n == name)
}

/// The value of `var <name> = ...`: the bracketed group when it starts with a bracket, else
/// the tokens up to the end of the line.
#[cfg(test)]
pub(crate) fn var_value<'a>(tokens: &'a [Token], name: &str) -> Option<&'a [Token]> {
    let at = tokens.windows(3).position(|w| {
        is_ident(&w[0], "var") && is_ident(&w[1], name) && w[2].tok == Tok::Punct('=')
    })?;
    let start = at + 3;
    let first = tokens.get(start)?;
    if matches!(first.tok, Tok::Punct('[' | '{')) {
        return group(tokens, start);
    }
    let end = tokens[start..]
        .iter()
        .position(|t| t.line != first.line)
        .map_or(tokens.len(), |n| start + n);
    Some(&tokens[start..end])
}

/// The entries of an object literal `{ key: { ... } ... }` whose values are objects, by key
/// (an identifier or a quoted name such as `'webhook-gateway'`).
#[cfg(test)]
pub(crate) fn object_entries(object: &[Token]) -> std::collections::BTreeMap<String, &[Token]> {
    let mut out = std::collections::BTreeMap::new();
    let mut i = 1;
    while i + 2 < object.len() {
        let key = match &object[i].tok {
            Tok::Ident(k) => Some(k.clone()),
            Tok::Str { text, .. } => Some(text.clone()),
            _ => None,
        };
        if let Some(key) = key
            && object[i + 1].tok == Tok::Punct(':')
            && let Some(value) = group(object, i + 2)
        {
            i += 2 + value.len();
            out.insert(key, value);
            continue;
        }
        i += 1;
    }
    out
}

/// The value of `<key>: ...` (the first such key in `tokens`), as for [`var_value`].
#[cfg(test)]
pub(crate) fn property_value<'a>(tokens: &'a [Token], key: &str) -> Option<&'a [Token]> {
    let at = tokens
        .windows(2)
        .position(|w| is_ident(&w[0], key) && w[1].tok == Tok::Punct(':'))?;
    let start = at + 2;
    let first = tokens.get(start)?;
    if matches!(first.tok, Tok::Punct('[' | '{')) {
        return group(tokens, start);
    }
    let end = tokens[start..]
        .iter()
        .position(|t| t.line != first.line)
        .map_or(tokens.len(), |n| start + n);
    Some(&tokens[start..end])
}

/// The strings directly inside an array (`[ 'a' 'b' ]`).
#[cfg(test)]
pub(crate) fn string_items(array: &[Token]) -> Vec<String> {
    let mut depth = 0;
    let mut out = Vec::new();
    for t in array {
        match &t.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => depth -= 1,
            Tok::Str { text, .. } if depth == 1 => out.push(text.clone()),
            _ => {}
        }
    }
    out
}

/// The objects directly inside an array, each as its `key: value` pairs whose value is a
/// single token (a string, number or identifier such as `true`).
#[cfg(test)]
pub(crate) fn object_items(array: &[Token]) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut depth = 0;
    let mut out = Vec::new();
    let mut i = 0;
    while i < array.len() {
        match &array[i].tok {
            Tok::Punct('(' | '[' | '{') => {
                depth += 1;
                if depth == 2 && array[i].tok == Tok::Punct('{') {
                    out.push(std::collections::BTreeMap::new());
                }
            }
            Tok::Punct(')' | ']' | '}') => depth -= 1,
            Tok::Ident(key)
                if depth == 2 && array.get(i + 1).map(|t| &t.tok) == Some(&Tok::Punct(':')) =>
            {
                if let (Some(map), Some(value)) = (out.last_mut(), array.get(i + 2)) {
                    let v = match &value.tok {
                        Tok::Str { text, .. } => Some(text.clone()),
                        Tok::Num(n) | Tok::Ident(n) => Some(n.clone()),
                        Tok::Punct(_) => None,
                    };
                    if let Some(v) = v {
                        map.insert(key.clone(), v);
                    }
                }
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Every `module <name> '<path>'` of a file.
pub(crate) fn module_paths(tokens: &[Token]) -> Vec<String> {
    tokens
        .windows(3)
        .filter_map(|w| match (&w[0].tok, &w[1].tok, &w[2].tok) {
            (Tok::Ident(m), Tok::Ident(_), Tok::Str { text, .. }) if m == "module" => {
                Some(text.clone())
            }
            _ => None,
        })
        .collect()
}

/// Every `.bicep` file under `dir`, sorted.
pub(crate) fn bicep_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(bicep_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "bicep") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// What `pycep-parser` runs: parse each file named on the command line; report failures.
const PYCEP_SCRIPT: &str = r#"
import sys
from pathlib import Path
from pycep import BicepParser
parser = BicepParser()
files = sys.argv[1:]
failed = 0
for name in files:
    try:
        parser.parse(file_path=Path(name))
    except Exception as e:
        failed += 1
        print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr)
print(f"pycep-parser: {len(files) - failed} of {len(files)} Bicep files parse")
sys.exit(1 if failed else 0)
"#;

/// `python3`, or the interpreter `PYTHON` names, when it runs.
fn python3() -> Option<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    Command::new(&python)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| python)
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// The structural check that needs nothing installed: every file tokenizes, its brackets
/// balance, and every module it uses exists.
pub(crate) fn check_structure(files: &[PathBuf]) -> anyhow::Result<()> {
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let tokens = tokenize(&text)
            .and_then(|t| check_balance(&t).map(|()| t))
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for module in module_paths(&tokens) {
            let target = file.parent().unwrap_or(Path::new(".")).join(&module);
            if !target.is_file() {
                bail!("{}: module {module} does not exist", file.display());
            }
        }
    }
    Ok(())
}

/// Checks every Bicep file under `<root>/infra-bicep`: the structural check, then a parse
/// with `pycep-parser`, installed once into `<root>/.tools/` (ignored by git). The parse is
/// skipped, saying so, where python3 is missing.
pub(crate) fn check(root: &Path) -> anyhow::Result<()> {
    let files = bicep_files(&root.join("infra-bicep"))?;
    if files.is_empty() {
        bail!(
            "no Bicep files under {}",
            root.join("infra-bicep").display()
        );
    }
    check_structure(&files)?;
    eprintln!(
        "==> Bicep structure: {} files balance and their modules exist",
        files.len()
    );
    let Some(python) = python3() else {
        eprintln!(
            "==> Bicep parse check SKIPPED: python3 is not installed (it installs pycep-parser {PYCEP_VERSION} into .tools/)"
        );
        return Ok(());
    };
    let venv = root.join(".tools").join(format!("pycep-{PYCEP_VERSION}"));
    // Written only after a complete install, so an interrupted one is redone.
    let installed = venv.join("installed");
    if !installed.exists() {
        crate::run(
            "python venv for pycep-parser",
            Command::new(&python)
                .arg("-m")
                .arg("venv")
                .arg("--clear")
                .arg(&venv),
        )
        .context(
            "python3 cannot create a virtual environment (on Debian: apt-get install python3-venv)",
        )?;
        crate::run(
            "install pycep-parser",
            Command::new(venv_python(&venv)).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("pycep-parser=={PYCEP_VERSION}"),
            ]),
        )?;
        std::fs::write(&installed, PYCEP_VERSION)
            .with_context(|| format!("cannot write {}", installed.display()))?;
    }
    let script = venv.join("parse_bicep.py");
    std::fs::write(&script, PYCEP_SCRIPT)
        .with_context(|| format!("cannot write {}", script.display()))?;
    crate::run(
        "Bicep parse (pycep-parser)",
        Command::new(venv_python(&venv)).arg(&script).args(&files),
    )
}

#[cfg(test)]
mod tests;
