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
        (b"{\"model\":\"m\",\"model\":\"n\"}", None, "invalid_json"),
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
    let items = req.input_items().unwrap().unwrap();
    assert_eq!(items.iter().map(|i| i.get()).collect::<Vec<_>>(), [r#"{"id":"a", "x":1}"#, r#"{"y":[2]}"#]);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = ResponsesRequest::parse(&bytes);
    }
}
