//! ASP.NET route templates as the Functions host matches them (`runs/{runId}`,
//! `items/{id:int}`, `files/{*path}`, `list/{page?}`), for the runner's front door.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Literal(String),
    Param {
        name: String,
        constraint: Option<String>,
        optional: bool,
    },
    CatchAll(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct RouteTemplate {
    segments: Vec<Segment>,
}

impl RouteTemplate {
    /// Parses a template. Parameters must fill whole segments; optional parameters and a
    /// catch-all may only come last.
    pub fn parse(template: &str) -> Result<Self, String> {
        let t = template.trim_matches('/');
        if t.is_empty() {
            return Err(
                "a route is needed (the function name is not used as a default here)".into(),
            );
        }
        let mut segments = Vec::new();
        let parts: Vec<&str> = t.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if part.is_empty() {
                return Err("empty segment ('//')".into());
            }
            if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if let Some(name) = inner.strip_prefix('*') {
                    if !last {
                        return Err("a catch-all parameter must be the last segment".into());
                    }
                    check_name(name)?;
                    segments.push(Segment::CatchAll(name.to_owned()));
                    continue;
                }
                let (inner, optional) = match inner.strip_suffix('?') {
                    Some(s) => (s, true),
                    None => (inner, false),
                };
                let (name, constraint) = match inner.split_once(':') {
                    Some((n, c)) => (n, Some(c.to_ascii_lowercase())),
                    None => (inner, None),
                };
                check_name(name)?;
                segments.push(Segment::Param {
                    name: name.to_owned(),
                    constraint,
                    optional,
                });
            } else if part.contains(['{', '}']) {
                return Err(format!("segment {part:?} mixes text and parameters"));
            } else {
                segments.push(Segment::Literal((*part).to_owned()));
            }
        }
        // Once a segment is optional, every later one must be too.
        let first_optional = segments
            .iter()
            .position(|s| matches!(s, Segment::Param { optional: true, .. }));
        if let Some(i) = first_optional
            && segments[i..].iter().any(|s| {
                matches!(
                    s,
                    Segment::Literal(_)
                        | Segment::Param {
                            optional: false,
                            ..
                        }
                )
            })
        {
            return Err("only the last segments may be optional".into());
        }
        Ok(RouteTemplate { segments })
    }

    /// Matches a path below the route prefix (no leading `/api`), returning the parameters.
    pub fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let path = path.trim_matches('/');
        let parts: Vec<&str> = if path.is_empty() {
            vec![]
        } else {
            path.split('/').collect()
        };
        let mut params = BTreeMap::new();
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::CatchAll(name) => {
                    let rest = parts.get(i..).map(|r| r.join("/")).unwrap_or_default();
                    if !rest.is_empty() {
                        params.insert(name.clone(), rest);
                    }
                    return Some(params);
                }
                Segment::Literal(lit) => {
                    if !parts.get(i)?.eq_ignore_ascii_case(lit) {
                        return None;
                    }
                }
                Segment::Param {
                    name,
                    constraint,
                    optional,
                } => match parts.get(i) {
                    None if *optional => continue,
                    None => return None,
                    Some(value) => {
                        let value = percent_decode(value)?;
                        if !constraint.as_deref().is_none_or(|c| satisfies(c, &value)) {
                            return None;
                        }
                        params.insert(name.clone(), value);
                    }
                },
            }
        }
        (parts.len() <= self.segments.len()).then_some(params)
    }

    /// How specific the template is, for choosing between several matches (literals beat
    /// constrained parameters beat parameters beat catch-alls, as in ASP.NET).
    pub fn precedence(&self) -> Vec<u8> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 4,
                Segment::Param {
                    constraint: Some(_),
                    ..
                } => 3,
                Segment::Param { .. } => 2,
                Segment::CatchAll(_) => 1,
            })
            .collect()
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("parameter name {name:?} is invalid"));
    }
    Ok(())
}

fn satisfies(constraint: &str, value: &str) -> bool {
    match constraint {
        // ASP.NET's `int` is `Int32`, `long` is `Int64`.
        "int" => value.parse::<i32>().is_ok(),
        "long" => value.parse::<i64>().is_ok(),
        "alpha" => !value.is_empty() && value.chars().all(|c| c.is_ascii_alphabetic()),
        "bool" => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
        "guid" => uuid::Uuid::parse_str(value).is_ok(),
        "double" | "decimal" | "float" => value.parse::<f64>().is_ok(),
        _ => true,
    }
}

/// Decodes `%XX` escapes in one path segment; `None` on malformed escapes or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            // `from_str_radix` alone would accept a sign (`%+4`).
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
