include!("common.rs.inc");

// Mistake: the handler takes `KickIn`, but `Greet`'s input is `GreetIn`.
async fn greet(_cx: Cx<User>, input: KickIn) -> Result<String, Reject> {
    Ok(input.who)
}

fn main() {
    let _ = Router::<User>::new().on::<Greet>(greet);
}
