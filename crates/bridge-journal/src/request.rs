//! The journal's view of a request: what the writer reads from the request the bridge sent upstream
//! ([`RequestView`]), so that the journal never parses the body a second time.
//!
//! Invariants:
//! - The bridge parses a request once; the journal only reads the fields it needs through [`RequestView`]
//!   (model, instructions, the input as its items' raw JSON or one string) and never re-parses the body.
//! - [`ParsedBody`] is the stand-in for callers without a parsed request (tests, tools): it parses a body
//!   once, keeping each input item as raw JSON, and fails with [`JournalError::Json`], never panics.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::JournalError;

/// The request as sent upstream, parsed once by the bridge; the journal reads it, never re-parses it.
pub trait RequestView: Send + Sync + std::fmt::Debug {
    fn model(&self) -> Option<&str>;
    /// `instructions`, decoded.
    fn instructions(&self) -> Option<String>;
    fn input(&self) -> InputView<'_>;
    /// Bytes of the body sent upstream (size accounting).
    fn body_len(&self) -> usize;
}

/// The request's `input`: absent (or neither a string nor a list), one string, or the list's items as
/// raw JSON, in order.
#[derive(Debug, Clone)]
pub enum InputView<'a> {
    Absent,
    Text(String),
    Items(&'a [Box<RawValue>]),
}

/// A request body parsed once into the fields the journal reads (see the module invariants).
#[derive(Debug)]
pub struct ParsedBody {
    model: Option<String>,
    instructions: Option<String>,
    input: Input,
    len: usize,
}

#[derive(Debug)]
enum Input {
    Absent,
    Text(String),
    Items(Vec<Box<RawValue>>),
}

/// The top-level fields read; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Fields<'a> {
    model: Option<String>,
    instructions: Option<String>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
}

impl ParsedBody {
    /// Parses `body` (a Responses request) once.
    pub fn parse(body: &[u8]) -> Result<Self, JournalError> {
        let fields: Fields<'_> = serde_json::from_slice(body).map_err(JournalError::Json)?;
        let input = match fields.input.map(RawValue::get) {
            Some(raw) if raw.starts_with('[') => Input::Items(serde_json::from_str(raw).map_err(JournalError::Json)?),
            Some(raw) if raw.starts_with('"') => Input::Text(serde_json::from_str(raw).map_err(JournalError::Json)?),
            _ => Input::Absent,
        };
        Ok(Self { model: fields.model, instructions: fields.instructions, input, len: body.len() })
    }
}

impl RequestView for ParsedBody {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    fn instructions(&self) -> Option<String> {
        self.instructions.clone()
    }

    fn input(&self) -> InputView<'_> {
        match &self.input {
            Input::Absent => InputView::Absent,
            Input::Text(s) => InputView::Text(s.clone()),
            Input::Items(items) => InputView::Items(items),
        }
    }

    fn body_len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_once_and_keeps_items_raw() {
        let body = br#"{"model":"m","instructions":"be \"brief\"","input":[{"type":"message", "role":"user"},{"a":[1, 2]}],"x":{}}"#;
        let p = ParsedBody::parse(body).unwrap();
        assert_eq!(p.model(), Some("m"));
        assert_eq!(p.instructions().as_deref(), Some("be \"brief\""));
        assert_eq!(p.body_len(), body.len());
        let InputView::Items(items) = p.input() else { panic!("items") };
        let raw: Vec<&str> = items.iter().map(|i| i.get()).collect();
        assert_eq!(raw, [r#"{"type":"message", "role":"user"}"#, r#"{"a":[1, 2]}"#], "item bytes kept as sent");

        let p = ParsedBody::parse(br#"{"input":"hi \u00e9"}"#).unwrap();
        assert!(matches!(p.input(), InputView::Text(s) if s == "hi é"));
        assert_eq!(p.model(), None);
        assert!(matches!(ParsedBody::parse(br#"{"input":null}"#).unwrap().input(), InputView::Absent));
        assert!(matches!(ParsedBody::parse(br#"{"input":{}}"#).unwrap().input(), InputView::Absent));
        assert!(ParsedBody::parse(b"{not json").is_err());
        assert!(ParsedBody::parse(br#"{"input":[1,"#).is_err());
        assert!(ParsedBody::parse(br#"{"model":3}"#).is_err());
    }
}
