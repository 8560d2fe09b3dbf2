use super::*;

const FILE: &str = "/p/endpoints.toml";

fn parsed(text: &str) -> Result<Vec<RemoteEndpoint>, EndpointsError> {
    parse(FILE, text, Some("/home/me"))
}

#[test]
fn a_good_file_names_each_endpoint_with_its_auth_and_expanded_paths() {
    let list = parsed(
        r#"
        [[endpoint]]
        name = "buildbox"
        url = "wss://buildbox.example:4443"
        shared_secret_file = "~/secrets/buildbox"
        issuer = "sidecar"
        audience = "buildbox"
        ca_file = "$HOME/ca.pem"

        [[endpoint]]
        name = "vm"
        url = "ws://10.0.0.2:4500"
        token_file = "/etc/codex/vm.token"

        [[endpoint]]
        name = "tunnel"
        url = "ws://127.0.0.1:4600"
        "#,
    )
    .unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].name, "buildbox");
    assert_eq!(list[0].url, "wss://buildbox.example:4443");
    assert_eq!(
        list[0].auth,
        RemoteAuth::SignedBearer {
            secret_file: PathBuf::from("/home/me/secrets/buildbox"),
            issuer: Some("sidecar".into()),
            audience: Some("buildbox".into()),
        }
    );
    assert_eq!(list[0].ca_file, Some(PathBuf::from("/home/me/ca.pem")));
    assert_eq!(
        list[1].auth,
        RemoteAuth::CapabilityToken {
            file: PathBuf::from("/etc/codex/vm.token")
        }
    );
    assert_eq!(list[2].auth, RemoteAuth::None);
    assert_eq!(auth_kind(&list[0].auth), "signed-bearer-token");
}

#[test]
fn an_inline_secret_is_refused_naming_the_file_the_endpoint_and_the_key() {
    let error = parsed(
        r#"
        [[endpoint]]
        name = "vm"
        url = "ws://10.0.0.2:4500"
        token = "abc"
        "#,
    )
    .unwrap_err();
    assert_eq!(
        error,
        EndpointsError::InlineSecret {
            file: FILE.into(),
            endpoint: "\"vm\"".into(),
            key: "token".into()
        }
    );
    let message = error.to_string();
    assert!(
        message.contains(FILE) && message.contains("token_file"),
        "{message}"
    );
    assert!(
        !message.contains("abc"),
        "the secret is not repeated: {message}"
    );
}

#[test]
fn an_unknown_key_is_refused_naming_the_endpoint() {
    let error = parsed(
        r#"
        [[endpoint]]
        name = "vm"
        url = "ws://10.0.0.2:4500"
        token_file = "/t"
        audiense = "x"
        "#,
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, EndpointsError::Table { .. }), "{error:?}");
    assert!(
        message.contains("\"vm\"") && message.contains("audiense"),
        "{message}"
    );
    // A table other than [[endpoint]] is a mistake too.
    let error = parsed("[endpoints.vm]\nurl = \"ws://10.0.0.2:1\"\n").unwrap_err();
    assert!(matches!(error, EndpointsError::Syntax { .. }), "{error:?}");
}

#[test]
fn a_bad_url_and_a_remote_without_auth_are_refused() {
    let error = parsed("[[endpoint]]\nname = \"vm\"\nurl = \"http://10.0.0.2:1\"\n").unwrap_err();
    assert_eq!(
        error,
        EndpointsError::BadUrl {
            file: FILE.into(),
            endpoint: "\"vm\"".into(),
            url: "http://10.0.0.2:1".into()
        }
    );
    let error = parsed("[[endpoint]]\nname = \"vm\"\nurl = \"ws://10.0.0.2:1\"\n").unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("no auth") && message.contains("shared_secret_file"),
        "{message}"
    );
    let error = parsed(
        "[[endpoint]]\nname = \"vm\"\nurl = \"ws://10.0.0.2:1\"\ntoken_file = \"/a\"\nshared_secret_file = \"/b\"\n",
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            EndpointsError::Setting {
                error: ConfigError::TwoAuths { .. },
                ..
            }
        ),
        "{error:?}"
    );
    let error = parsed(
        "[[endpoint]]\nname = \"vm\"\nurl = \"ws://10.0.0.2:1\"\ntoken_file = \"relative/t\"\n",
    )
    .unwrap_err();
    assert!(error.to_string().contains("token_file"), "{error}");
}

#[test]
fn a_name_given_twice_or_the_default_name_is_refused() {
    let twice = "[[endpoint]]\nname = \"vm\"\nurl = \"ws://127.0.0.1:1\"\n\
                 [[endpoint]]\nname = \"vm\"\nurl = \"ws://127.0.0.1:2\"\n";
    assert_eq!(
        parsed(twice).unwrap_err(),
        EndpointsError::Duplicate {
            file: FILE.into(),
            name: "vm".into()
        }
    );
    let default = "[[endpoint]]\nname = \"default\"\nurl = \"ws://127.0.0.1:1\"\n";
    assert_eq!(
        parsed(default).unwrap_err(),
        EndpointsError::RedefinesDefault { file: FILE.into() }
    );
}

#[test]
fn no_file_is_no_endpoints_and_a_broken_one_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let none = Endpoints::load(dir.path(), None);
    assert_eq!(none, Endpoints::default());
    assert_eq!(none.names(), vec!["default"]);
    std::fs::write(dir.path().join(ENDPOINTS_FILE), "[[endpoint]\n").unwrap();
    let broken = Endpoints::load(dir.path(), None);
    assert!(broken.list.is_empty());
    let problem = broken.problem.unwrap().to_string();
    assert!(problem.contains("endpoints.toml"), "{problem}");
    std::fs::write(
        dir.path().join(ENDPOINTS_FILE),
        "[[endpoint]]\nname = \"vm\"\nurl = \"ws://127.0.0.1:1\"\n",
    )
    .unwrap();
    let good = Endpoints::load(dir.path(), None);
    assert_eq!(good.names(), vec!["default", "vm"]);
    assert!(good.get("vm").is_some() && good.get("other").is_none());
}
