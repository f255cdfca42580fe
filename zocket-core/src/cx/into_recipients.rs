//! What `.to(..)` and `.to_room(..)` accept: one or several client ids or room names.

use crate::ids::ClientId;

/// One or several client ids: `ClientId`, `&ClientId`, `&str`, `String`, or an array,
/// `Vec` or slice of any of those.
pub trait IntoClientIds {
    /// The ids.
    fn into_client_ids(self) -> Vec<ClientId>;
}
/// One or several room names: `&str`, `String`, or an array, `Vec` or slice of them.
pub trait IntoRoomNames {
    /// The names.
    fn into_room_names(self) -> Vec<String>;
}

macro_rules! single {
    ($($t:ty),*) => {$(
        impl IntoClientIds for $t { fn into_client_ids(self) -> Vec<ClientId> { vec![ClientId::from(self)] } }
    )*};
}
single!(ClientId, &ClientId, &str, String, &String);

impl<T: Into<ClientId>, const N: usize> IntoClientIds for [T; N] {
    fn into_client_ids(self) -> Vec<ClientId> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<T: Into<ClientId>> IntoClientIds for Vec<T> {
    fn into_client_ids(self) -> Vec<ClientId> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<T> IntoClientIds for &[T]
where
    for<'x> &'x T: Into<ClientId>,
{
    fn into_client_ids(self) -> Vec<ClientId> {
        self.iter().map(Into::into).collect()
    }
}

impl IntoRoomNames for &str {
    fn into_room_names(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}
impl IntoRoomNames for String {
    fn into_room_names(self) -> Vec<String> {
        vec![self]
    }
}
impl IntoRoomNames for &String {
    fn into_room_names(self) -> Vec<String> {
        vec![self.clone()]
    }
}
impl<T: AsRef<str>, const N: usize> IntoRoomNames for [T; N] {
    fn into_room_names(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}
impl<T: AsRef<str>> IntoRoomNames for Vec<T> {
    fn into_room_names(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}
impl<T: AsRef<str>> IntoRoomNames for &[T] {
    fn into_room_names(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}
