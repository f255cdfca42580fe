include!("common.rs.inc");

// Mistake: behind `RequireAdmin` the handler receives `Cx<Admin>`, not `Cx<User>`.
async fn kick(_cx: Cx<User>, _input: KickIn) -> Result<(), Reject> {
    Ok(())
}

fn main() {
    let _ = Router::<User>::new().scope(RequireAdmin, |s| s.on::<Kick>(kick));
}
