use zocket_core::{Connect, Context, Reject, Router, Server};

struct App;
struct User;
impl Context for User {
    type Headers = serde_json::Value;
    type State = App;
    async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
}

// Mistake: the context's state is `App`, but the builder was not given one.
fn main() {
    let _ = Server::builder(Router::<User>::new()).build();
}
