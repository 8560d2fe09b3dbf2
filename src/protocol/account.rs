//! `account/read`: the account Codex would use, and whether its model
//! provider needs one at all.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountReadParams {
    /// Always false here: a refresh goes to OpenAI over the network, and the
    /// question is only whether credentials exist.
    pub refresh_token: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountReadResponse {
    /// `None` when Codex holds no credentials (no `auth.json`).
    #[serde(default)]
    pub account: Option<Account>,
    /// False for a provider that brings its own key (any custom
    /// `[model_providers.X]` without `requires_openai_auth`): then no
    /// account is needed.
    pub requires_openai_auth: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    /// `apiKey`, `chatgpt`, `amazonBedrock`, `gcp` in 0.169; kept as a
    /// string so a kind added later still decodes.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_0_169_answers() {
        let out: AccountReadResponse = serde_json::from_str(
            r#"{"account":null,"userId":null,"requiresOpenaiAuth":true,"workspaceRouting":null}"#,
        )
        .unwrap();
        assert!(out.account.is_none() && out.requires_openai_auth);
        let key: AccountReadResponse =
            serde_json::from_str(r#"{"account":{"type":"apiKey"},"requiresOpenaiAuth":true}"#)
                .unwrap();
        assert_eq!(key.account.unwrap().kind, "apiKey");
        assert_eq!(
            serde_json::to_value(AccountReadParams::default()).unwrap(),
            serde_json::json!({"refreshToken": false})
        );
    }
}
