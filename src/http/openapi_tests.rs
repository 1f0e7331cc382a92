use super::*;

#[test]
fn dump() {
    std::fs::write(
        "/tmp/oa/openapi.json",
        document(|doc| crate::http::routes(doc))
            .to_pretty_json()
            .unwrap(),
    )
    .unwrap();
}
