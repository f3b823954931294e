use super::*;

#[test]
fn keeps_order_and_bytes() {
    let body = br#"{"model":"gpt-5.5","stream":true,"input":[{"type":"message","role":"user","content":"hi \u00e9"}],"zeta":1,"alpha":{"b":1,"a":2}}"#;
    let req = ResponsesRequest::parse(body).unwrap();
    assert_eq!(req.keys().collect::<Vec<_>>(), ["model", "stream", "input", "zeta", "alpha"]);
    assert!(!req.is_modified());
    assert_eq!(req.to_bytes(), body.to_vec());
}

#[test]
fn edits_in_place() {
    let mut req = ResponsesRequest::parse(br#"{"model":"m","promptCacheKey":"k","stream":false}"#).unwrap();
    req.rename("promptCacheKey", "prompt_cache_key");
    req.set("stream", &true).unwrap();
    req.set("store", &false).unwrap();
    assert!(req.is_modified());
    assert_eq!(
        String::from_utf8(req.to_bytes()).unwrap(),
        r#"{"model":"m","prompt_cache_key":"k","stream":true,"store":false}"#
    );
}

#[test]
fn setting_the_same_value_is_not_a_change() {
    let mut req = ResponsesRequest::parse(br#"{"model":"m","stream":true}"#).unwrap();
    req.set("stream", &true).unwrap();
    assert!(!req.is_modified());
}

#[test]
fn errors_name_the_path() {
    let cases: &[(&[u8], Option<&str>, &str)] = &[
        (b"", None, "invalid_json"),
        (b"[1,2]", None, "invalid_json"),
        (b"{\"model\":", None, "invalid_json"),
        (b"{\"input\":[]}", Some("model"), "missing_required_parameter"),
        (b"{\"model\":1}", Some("model"), "invalid_type"),
        (b"{\"model\":\"m\",\"stream\":\"yes\"}", Some("stream"), "invalid_type"),
        (b"{\"model\":\"m\",\"input\":[{},3]}", Some("input[1]"), "invalid_type"),
        (b"{\"model\":\"m\",\"max_output_tokens\":1.5}", Some("max_output_tokens"), "invalid_type"),
        (b"{\"model\":\"m\",\"model\":\"n\"}", Some("model"), "invalid_json"),
    ];
    for (body, param, code) in cases {
        let err = ResponsesRequest::parse(body).unwrap_err();
        assert_eq!(err.param.as_deref(), *param, "{}", String::from_utf8_lossy(body));
        assert_eq!(err.code, *code, "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn nulls_are_accepted_for_optional_fields() {
    let req = ResponsesRequest::parse(br#"{"model":"m","reasoning":null,"instructions":null}"#).unwrap();
    assert_eq!(req.get::<String>("instructions").unwrap(), None);
    assert!(!req.stream());
}

#[test]
fn input_items_stay_raw() {
    let req = ResponsesRequest::parse(br#"{"model":"m","input":[{"id":"a", "x":1},{"y":[2]}]}"#).unwrap();
    let items = req.input_items().unwrap();
    assert_eq!(items.iter().map(|i| i.get()).collect::<Vec<_>>(), [r#"{"id":"a", "x":1}"#, r#"{"y":[2]}"#]);
}

#[test]
fn input_edits_keep_order_and_other_items() {
    let raw = |s: &str| serde_json::value::RawValue::from_string(s.to_owned()).unwrap();
    let body = br#"{"model":"m","input":[{"a":1}, {"b":2}],"tools":[]}"#;
    let mut req = ResponsesRequest::parse(body).unwrap();
    assert!(!req.is_modified());
    assert!(req.push_input_item(raw(r#"{"c":3}"#)));
    assert!(req.is_modified());
    assert_eq!(
        String::from_utf8(req.to_bytes()).unwrap(),
        r#"{"model":"m","input":[{"a":1},{"b":2},{"c":3}],"tools":[]}"#
    );
    let mut text = ResponsesRequest::parse(br#"{"model":"m","input":"hi \u00e9"}"#).unwrap();
    assert_eq!(text.input_text().as_deref(), Some("hi \u{e9}"));
    assert!(text.input_items().is_none());
    assert!(!text.push_input_item(raw("{}")));
    text.set_input_items(vec![raw(r#"{"role":"user"}"#)]);
    assert_eq!(String::from_utf8(text.to_bytes()).unwrap(), r#"{"model":"m","input":[{"role":"user"}]}"#);
}

#[test]
fn parse_count_counts_every_parse() {
    let before = crate::request::parse_count();
    let _ = ResponsesRequest::parse(b"{}");
    let _ = ResponsesRequest::parse(br#"{"model":"m"}"#);
    assert!(crate::request::parse_count() >= before + 2);
}

#[test]
fn duplicate_keys_are_refused_at_any_depth() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"{"model":"m","model":"n"}"#, "model", "duplicate key `model` at line 1 column 14"),
        (
            r#"{"model":"m","metadata":{"a":1,"a":2}}"#,
            "metadata.a",
            "duplicate key `a` at `metadata.a`, line 1 column 32",
        ),
        (
            r#"{"model":"m","input":[{"type":"message"},{"content":[{"type":"input_text","text":"x","text":"y"}]}]}"#,
            "input[1].content[0].text",
            "duplicate key `text` at `input[1].content[0].text`",
        ),
        // Keys compare by their decoded value.
        (r#"{"model":"m","x":{"a":1,"\u0061":2}}"#, "x.a", "duplicate key `a` at `x.a`"),
        (r#"{"model":"m","x":[[{"k":{},"k":[]}]]}"#, "x[0][0].k", "`x[0][0].k`"),
        (r#"{"model":"m","a.b":{"c":1,"c":2}}"#, r#"["a.b"].c"#, r#"`["a.b"].c`"#),
        (r#"{"model":"m","x":{"":1,"":2}}"#, r#"x[""]"#, "duplicate key ``"),
        ("{\"model\":\"m\",\n \"x\": {\"a\":1,\n  \"a\":2}}", "x.a", "line 3 column 3"),
    ];
    for (body, param, message) in cases {
        let err = ResponsesRequest::parse(body.as_bytes()).unwrap_err();
        assert_eq!(err.code, "invalid_json", "{body}");
        assert_eq!(err.param.as_deref(), Some(*param), "{body}");
        assert!(err.message.contains(message), "{body}: {}", err.message);
    }
}

#[test]
fn equal_keys_in_different_objects_are_fine() {
    let body = br#"{"model":"m","input":[{"type":"a","k":{"type":"b"}},{"type":"c"}],"metadata":{"model":"x"},"k":{}}"#;
    let req = ResponsesRequest::parse(body).unwrap();
    assert_eq!(req.to_bytes(), body.to_vec());
    // Escaped quotes and backslashes inside strings do not confuse the key scan.
    let tricky = br#"{"model":"m","x":{"a\\":"\",\"a\":1","a":{"\"":0,"\\\"":1}}}"#;
    ResponsesRequest::parse(tricky).unwrap();
}

#[test]
fn long_duplicate_keys_are_cut_in_messages() {
    let key = "é".repeat(1000);
    let body = format!(r#"{{"model":"m","x":{{"{key}":1,"{key}":2}}}}"#);
    let err = ResponsesRequest::parse(body.as_bytes()).unwrap_err();
    assert!(err.message.len() < 400, "{}", err.message);
    assert!(err.message.contains(&format!("`{}...`", "é".repeat(64))), "{}", err.message);
}

#[test]
fn edits_keep_order_and_index() {
    let mut req = ResponsesRequest::parse(br#"{"model":"m","a":1,"b":2,"c":3}"#).unwrap();
    assert!(req.remove("a"));
    assert!(req.raw("a").is_none());
    req.rename("b", "a");
    req.rename("c", "a"); // `a` exists: no change
    req.set("d", &4).unwrap();
    assert_eq!(req.raw("a").unwrap().get(), "2");
    assert_eq!(req.raw("c").unwrap().get(), "3");
    assert_eq!(String::from_utf8(req.to_bytes()).unwrap(), r#"{"model":"m","a":2,"c":3,"d":4}"#);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = ResponsesRequest::parse(&bytes);
    }
}

/// Bodies of about 2 MB in the shapes that used to cost quadratic time. Only correctness is asserted; the elapsed
/// time is printed for `cargo test -p bridge-types --release -- --nocapture large_`.
mod large {
    use std::time::Instant;

    use super::*;

    fn timed<T>(label: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        eprintln!("{label}: {:?}", start.elapsed());
        out
    }

    fn many_keys(n: usize) -> String {
        let mut out = String::with_capacity(n * 13);
        for i in 0..n {
            out.push_str(&format!(",\"k{i:06}\":0"));
        }
        out
    }

    #[test]
    fn large_top_level_keys() {
        let body = format!("{{\"model\":\"m\"{}}}", many_keys(160_000));
        let req =
            timed(&format!("160k top-level keys, {} bytes", body.len()), || ResponsesRequest::parse(body.as_bytes()))
                .unwrap();
        assert_eq!(req.keys().count(), 160_001);
        assert_eq!(req.to_bytes(), body.as_bytes());
    }

    #[test]
    fn large_nested_keys() {
        let body = format!("{{\"model\":\"m\",\"metadata\":{{\"k\":1{}}}}}", many_keys(160_000));
        let req =
            timed(&format!("160k nested keys, {} bytes", body.len()), || ResponsesRequest::parse(body.as_bytes()))
                .unwrap();
        assert_eq!(req.raw("metadata").unwrap().get().len(), body.len() - 25);
    }

    #[test]
    fn large_input_items() {
        let item = r#"{"role":"user","content":"hi"}"#;
        let items = vec![item; 100_000].join(",");
        let body = format!("{{\"model\":\"m\",\"input\":[{items}]}}");
        let req =
            timed(&format!("100k input items, {} bytes", body.len()), || ResponsesRequest::parse(body.as_bytes()))
                .unwrap();
        assert_eq!(req.input_items().unwrap().len(), 100_000);
    }

    #[test]
    fn large_deep_nesting_and_long_strings() {
        let depth = 500_000;
        let body = format!("{{\"model\":\"m\",\"x\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        let req = timed(&format!("depth {depth}, {} bytes", body.len()), || ResponsesRequest::parse(body.as_bytes()))
            .unwrap();
        assert_eq!(req.raw("x").unwrap().get().len(), 2 * depth);

        let long = "a\\\"é".repeat(400_000);
        let body = format!("{{\"model\":\"m\",\"{long}\":\"{long}\"}}");
        let req =
            timed(&format!("long key and string, {} bytes", body.len()), || ResponsesRequest::parse(body.as_bytes()))
                .unwrap();
        assert_eq!(req.keys().count(), 2);
    }
}
