include!("common.rs.inc");

// Mistake: `ChatMessage` carries a `ChatMsg`, not a string.
async fn greet(cx: Cx<User>, input: GreetIn) -> Result<String, Reject> {
    let _ = cx.send::<ChatMessage>(input.name.clone()).broadcast();
    Ok(input.name)
}

fn main() {
    let _ = Router::<User>::new().on::<Greet>(greet);
}
