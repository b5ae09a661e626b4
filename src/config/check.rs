//! Every error of a configuration at once, for `edge-auth-config`: the
//! compiler collects its own (`compile_all`); values serde cannot read at
//! all are taken out one by one (each reported once) so the rest can be
//! read and compiled. The first error is always the one the plugin reports.

use serde_json::Value;
use serde_path_to_error::Segment;

use super::compile::{compile_all, parse, serde_error};
use super::error::ConfigError;
use super::model::Config;
use super::raw::RawScope;

/// At most this many unreadable values are taken out.
const MAX_UNREADABLE: usize = 50;

/// Every error found, in the order the plugin meets them.
#[derive(Debug)]
pub struct AllErrors {
    /// Never empty.
    pub errors: Vec<ConfigError>,
    /// False when a value could not be taken out (an element of a list
    /// that serde cannot read, say): more errors may follow once these are
    /// fixed.
    pub complete: bool,
}

/// Parses and compiles like `compile_json`, listing every error.
pub fn compile_json_all(json: &[u8]) -> Result<Config, AllErrors> {
    let read = read_all(json);
    let Some(raw) = read.raw else {
        return Err(AllErrors {
            errors: read.errors,
            complete: read.complete,
        });
    };
    let mut errors = read.errors;
    match compile_all(raw) {
        Ok(mut config) if errors.is_empty() => {
            config.digest = <sha2::Sha256 as sha2::Digest>::digest(json).into();
            Ok(config)
        }
        Ok(_) => Err(AllErrors {
            errors,
            complete: read.complete,
        }),
        Err(more) => {
            // What was taken out is missing now: errors about it (or what
            // holds it) are not the user's.
            errors.extend(
                more.into_iter()
                    .filter(|e| !read.taken_out.iter().any(|t| related(&e.field, t))),
            );
            Err(AllErrors {
                errors,
                complete: read.complete,
            })
        }
    }
}

struct Read {
    raw: Option<RawScope>,
    errors: Vec<ConfigError>,
    taken_out: Vec<String>,
    complete: bool,
}

fn read_all(json: &[u8]) -> Read {
    let first = match parse(json) {
        Ok(raw) => {
            return Read {
                raw: Some(raw),
                errors: Vec::new(),
                taken_out: Vec::new(),
                complete: true,
            }
        }
        Err(first) => first,
    };
    let mut read = Read {
        raw: None,
        errors: vec![first],
        taken_out: Vec::new(),
        complete: true,
    };
    // Not JSON, or not an object: nothing more can be read.
    let Ok(mut value) = serde_json::from_slice::<Value>(json) else {
        return read;
    };
    if !value.is_object() {
        return read;
    }
    for _ in 0..MAX_UNREADABLE {
        let err = match serde_path_to_error::deserialize::<_, RawScope>(value.clone()) {
            Ok(raw) => {
                read.raw = Some(raw);
                return read;
            }
            Err(err) => err,
        };
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        let error = serde_error(err);
        let removed = take_out(&mut value, &segments);
        let follows = read.taken_out.iter().any(|t| related(&error.field, t));
        if !follows && !read.errors.iter().any(|e| e.field == error.field) {
            read.errors.push(error.clone());
        }
        if !removed {
            break;
        }
        read.taken_out.push(error.field);
    }
    read.complete = false;
    read
}

/// Removes the object member at `path`; false when the path does not end
/// in one (a list element: removing it would renumber the rest).
fn take_out(root: &mut Value, path: &[Segment]) -> bool {
    let Some((Segment::Map { key }, parents)) = path.split_last() else {
        return false;
    };
    let mut node = root;
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => node.get_mut(key.as_str()),
            Segment::Seq { index } => node.get_mut(*index),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        node = next;
    }
    node.as_object_mut()
        .is_some_and(|map| map.remove(key.as_str()).is_some())
}

/// The same field, one inside the other, or one holding the other.
fn related(a: &str, b: &str) -> bool {
    let within = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    a == b || within(a, b) || within(b, a)
}
