//! `codex-bridge logout`: removes the stored credentials.

use crate::cli::LogoutArgs;

pub fn run(args: LogoutArgs) -> anyhow::Result<()> {
    let config = super::chatgpt_env::credential_config(&args.store)?;
    let path = &config.chatgpt.credentials;
    if bridge_auth::file::delete(path)? {
        println!("logged out: removed {}", path.display());
    } else {
        println!("not logged in ({} does not exist)", path.display());
    }
    Ok(())
}
