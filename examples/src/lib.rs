pub mod chat;
pub fn x() {}
