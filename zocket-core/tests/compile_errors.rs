//! The compiler errors of the three commonest mistakes, pinned.
#[test]
fn compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
