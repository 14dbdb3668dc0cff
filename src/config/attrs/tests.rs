//! Unit tests of the attribute checks in `attrs/`.
use super::*;

/// A value of key `SERVICE_API_X` (also the host attributes' tests' input).
pub(super) fn value(text: &str) -> Value<'_> {
    Value {
        key: "SERVICE_API_X",
        text,
        span: None,
        secret: false,
    }
}

#[test]
fn capabilities() {
    let v = value("");
    assert_eq!(capability(&v, "cap_net_admin").unwrap().0, "NET_ADMIN");
    assert_eq!(capability(&v, "ALL").unwrap().to_string(), "ALL");
    assert_eq!(
        capability(&v, "NET_BIND_SERVICE").unwrap().to_string(),
        "CAP_NET_BIND_SERVICE"
    );
    let error = capability(&v, "NET_BIND_SERVCE").unwrap_err();
    assert!(error.hint.unwrap().contains("NET_BIND_SERVICE"));
}

#[test]
fn tmpfs_options_continue_the_entry() {
    assert_eq!(
        tmpfs_entries("/tmp:size=64m,mode=1777, /run"),
        vec!["/tmp:size=64m,mode=1777", "/run"]
    );
    let t = tmpfs(&value(""), "/tmp:size=64m,mode=1777").unwrap();
    assert_eq!(t.size, Some(ByteSize(64 << 20)));
    assert_eq!(t.mode, Some(0o1777));
    assert_eq!(t.options(), "size=64m,mode=1777");
    assert!(tmpfs(&value(""), "tmp").is_err());
    assert!(tmpfs(&value(""), "/tmp:size=lots").is_err());
    assert!(tmpfs(&value(""), "/tmp:mode=999").is_err());
    // Whoogle's `/config/:size=10M,uid=927,gid=927,mode=1700`.
    let t = tmpfs(&value(""), "/config/:size=10M,uid=927,gid=927,mode=1700").unwrap();
    assert_eq!((t.uid, t.gid, t.mode), (Some(927), Some(927), Some(0o1700)));
    assert_eq!(t.options(), "size=10m,mode=1700,uid=927,gid=927");
    assert!(tmpfs(&value(""), "/tmp:uid=root").is_err());
}

#[test]
fn ulimits() {
    let v = value("");
    let u = ulimit(&v, "nofile=1024:2048").unwrap();
    assert_eq!((u.soft, u.hard), (1024, 2048));
    let u = ulimit(&v, "nproc=512").unwrap();
    assert_eq!((u.soft, u.hard), (512, 512));
    assert!(ulimit(&v, "nofile=2048:1024").is_err());
    assert!(ulimit(&v, "files=10").is_err());
    assert!(ulimit(&v, "nofile").is_err());
    let u = ulimit(&v, "memlock=-1:-1").unwrap();
    assert_eq!((u.soft, u.hard), (-1, -1));
    let u = ulimit(&v, "memlock=unlimited").unwrap();
    assert_eq!((u.soft, u.hard), (-1, -1));
    assert!(ulimit(&v, "memlock=1024:-1").is_ok());
    assert!(ulimit(&v, "memlock=-1:1024").is_err());
    assert!(ulimit(&v, "memlock=-2").is_err());
}

#[test]
fn sysctls_docker_allows() {
    let v = value("");
    assert!(sysctl(&v, "net.core.somaxconn=1024").is_ok());
    assert!(sysctl(&v, "kernel.shmmax=1000").is_ok());
    assert!(sysctl(&v, "vm.overcommit_memory=1").is_err());
    assert!(sysctl(&v, "net.core.somaxconn").is_err());
}

#[test]
fn signals_users_platforms_hosts() {
    assert_eq!(signal(&value("quit")).unwrap().0, "SIGQUIT");
    assert_eq!(signal(&value("SIGRTMIN+3")).unwrap().0, "SIGRTMIN+3");
    assert_eq!(signal(&value("9")).unwrap().0, "9");
    assert!(signal(&value("SIGNOPE")).is_err());
    assert_eq!(user(&value("1000:1000")).unwrap().to_string(), "1000:1000");
    assert!(user(&value("root; rm")).is_err());
    assert_eq!(
        platform(&value("linux/arm64/v8")).unwrap().to_string(),
        "linux/arm64/v8"
    );
    assert!(platform(&value("linux")).is_err());
    let v = value("");
    assert_eq!(
        extra_host(&v, "host.docker.internal:host-gateway")
            .unwrap()
            .to_string(),
        "host.docker.internal:host-gateway"
    );
    assert_eq!(
        extra_host(&v, "v6:::1").unwrap().address,
        HostAddress::Ip("::1".parse().unwrap())
    );
    assert!(extra_host(&v, "db:not-an-ip").is_err());
}

#[test]
fn sizes_and_env_names() {
    assert_eq!(parse_size("10m"), Some(ByteSize(10 << 20)));
    assert_eq!(ByteSize(10 << 20).to_string(), "10m");
    assert_eq!(ByteSize(1500).to_string(), "1500");
    assert_eq!(parse_size("0"), None);
    assert_eq!(parse_size("10x"), None);
    assert!(env_name("discovery.type"));
    assert!(!env_name(""));
    assert!(!env_name("a=b"));
    assert!(label(&value(""), "dev.stack.project=x").is_err());
}

#[test]
fn a_label_value_continues_over_commas_without_equals() {
    let split = |text| crate::config::values::split_escaped(text).unwrap();
    assert_eq!(
        label_entries(split("a=x,y,b=z, c=1")),
        vec!["a=x,y", "b=z", "c=1"]
    );
    // An escaped comma keeps the blank after it, and `\\` is a backslash.
    assert_eq!(
        label_entries(split(
            r"r=Host(`a`) && PathPrefix(`/api/`\, `/git/`), b=c\\d\q"
        )),
        vec!["r=Host(`a`) && PathPrefix(`/api/`, `/git/`)", r"b=c\d\q"]
    );
    assert_eq!(split(r"a=1\,"), vec!["a=1,"]);
    assert_eq!(crate::config::values::split_escaped(r"a=1,b\"), None);
}

#[test]
fn security_options_are_the_ones_the_engine_takes() {
    let v = value("");
    for ok in [
        "no-new-privileges",
        "no-new-privileges:true",
        "label=disable",
        "label:type:svirt_apache_t",
        "apparmor=unconfined",
        "seccomp=unconfined",
    ] {
        assert!(security_opt(&v, ok).is_ok(), "{ok}");
    }
    for bad in [
        "seccomp=./profile.json",
        "no-new-privileges:maybe",
        "frobnicate",
        "label=",
    ] {
        assert!(security_opt(&v, bad).is_err(), "{bad}");
    }
}

#[test]
fn a_hostname_is_rfc_1123_labels_of_at_most_63_characters() {
    for good in [
        "web",
        "web-01",
        "mail.example.com",
        "a1.b2",
        &"a".repeat(63),
    ] {
        assert_eq!(hostname(&value(good)).unwrap(), good);
    }
    assert_eq!(hostname(&value("  web  ")).unwrap(), "web");
    for bad in [
        "",
        "web_01",
        "-web",
        "web-",
        "web..internal",
        ".web",
        "web.",
        "wéb",
        "a b",
    ] {
        let error = hostname(&value(bad)).unwrap_err();
        assert!(
            error.message.contains("is not a host name"),
            "{bad}: {error:?}"
        );
    }
    // 64 characters: the kernel's limit, past a label's; 70 fails the engine's start.
    for long in [
        "a".repeat(64),
        format!("{}.{}", "a".repeat(30), "b".repeat(39)),
    ] {
        let error = hostname(&value(&long)).unwrap_err();
        assert!(
            error
                .message
                .contains("more than a container's host name may have (63)"),
            "{error:?}"
        );
        assert!(error.hint.unwrap().contains("shorter"));
    }
}

#[test]
fn pull_policies() {
    use image::{pull_policy, PullPolicy};
    assert_eq!(pull_policy(&value("always")).unwrap(), PullPolicy::Always);
    assert_eq!(pull_policy(&value("Never")).unwrap(), PullPolicy::Never);
    assert_eq!(
        pull_policy(&value("if_not_present")).unwrap(),
        PullPolicy::Missing
    );
    assert_eq!(
        pull_policy(&value("missing")).unwrap().compose(),
        "if_not_present"
    );
    assert_eq!(pull_policy(&value("build")).unwrap(), PullPolicy::Build);
    for schedule in ["daily", "weekly", "every_12h"] {
        let error = pull_policy(&value(schedule)).unwrap_err();
        assert!(error.message.contains("pull schedule"), "{error:?}");
        assert!(error.hint.unwrap().contains("`always`"));
    }
    let error = pull_policy(&value("alway")).unwrap_err();
    assert!(
        error.hint.unwrap().contains("`always`"),
        "a near miss is named"
    );
}
