//! The kernel gate: the reference's compatibility table (§4.1), cell by cell.

use hpc_beegfs::{Compat, Kernel, KernelRefusal, Release, client_compat, releases_that_build};

#[derive(Debug, Clone, Copy, PartialEq)]
enum V {
    Yes,
    Unverified,
    No,
}

fn verdict(c: Compat) -> V {
    match c {
        Compat::Builds => V::Yes,
        Compat::Unverified(_) => V::Unverified,
        Compat::Fails(_) => V::No,
    }
}

#[test]
fn the_reference_table() {
    use V::{No, Unverified as U, Yes};
    let releases = [
        Release::new(7, 4, 4),
        Release::new(7, 4, 6),
        Release::new(7, 4, 7),
        Release::new(8, 0, 1),
        Release::new(8, 1, 0),
        Release::new(8, 2, 0),
        Release::new(8, 3, 1),
    ];
    #[rustfmt::skip]
    let table: [(Kernel, [V; 7]); 8] = [
        //                       7.4.4 7.4.6 7.4.7 8.0.1 8.1.0 8.2.0 8.3.1
        (Kernel::new(5, 10), [Yes, Yes, Yes, Yes, Yes, Yes, Yes]),
        (Kernel::new(6, 1),  [Yes, Yes, Yes, Yes, Yes, Yes, Yes]),
        (Kernel::new(6, 2),  [U,   Yes, Yes, Yes, Yes, Yes, Yes]),
        (Kernel::new(6, 3),  [No,  Yes, Yes, Yes, Yes, Yes, Yes]),
        (Kernel::new(6, 11), [No,  Yes, Yes, Yes, Yes, Yes, Yes]),
        (Kernel::new(6, 12), [No,  No,  Yes, No,  Yes, Yes, Yes]),
        (Kernel::new(6, 14), [No,  No,  No,  No,  No,  No,  Yes]),
        (Kernel::new(6, 15), [No,  No,  No,  No,  No,  No,  U  ]),
    ];
    for (kernel, row) in table {
        for (r, want) in releases.iter().zip(row) {
            assert_eq!(verdict(client_compat(*r, kernel)), want, "{r} on {kernel}");
        }
    }
}

#[test]
fn releases_between_the_table_columns() {
    // 7.4.5 announces 6.8 but 6.6 broke until 7.4.6: unverified below 6.12, fails on 6.12.
    assert_eq!(
        verdict(client_compat(Release::new(7, 4, 5), Kernel::new(6, 8))),
        V::Unverified
    );
    assert_eq!(
        verdict(client_compat(Release::new(7, 4, 5), Kernel::new(6, 12))),
        V::No
    );
    // 6.13 was never test-built with the releases that stop at 6.12.
    assert_eq!(
        verdict(client_compat(Release::new(8, 1, 0), Kernel::new(6, 13))),
        V::Unverified
    );
    assert_eq!(
        verdict(client_compat(Release::new(8, 3, 0), Kernel::new(6, 13))),
        V::Yes
    );
    // Later patch releases inherit their line's fixes.
    assert_eq!(
        verdict(client_compat(Release::new(7, 4, 9), Kernel::new(6, 12))),
        V::Yes
    );
    assert_eq!(
        verdict(client_compat(Release::new(8, 4, 0), Kernel::new(6, 14))),
        V::Yes
    );
}

#[test]
fn a_version_without_patch_is_read_as_its_oldest_release() {
    let v: hpc_config::types::BeegfsVersion = "7.4".parse().unwrap_or_else(|_| unreachable!());
    let r = Release::from_version(v);
    assert_eq!(r.to_string(), "7.4");
    assert_eq!(verdict(client_compat(r, Kernel::new(6, 12))), V::No);
}

#[test]
fn the_refusal_names_the_releases_that_build() {
    assert_eq!(
        releases_that_build(Kernel::new(6, 12)),
        [Release::new(7, 4, 7), Release::new(8, 1, 0)]
    );
    assert_eq!(
        releases_that_build(Kernel::new(6, 14)),
        [Release::new(8, 3, 0)]
    );
    let Compat::Fails(reason) = client_compat(Release::new(7, 4, 4), Kernel::new(6, 12)) else {
        unreachable!("7.4.4 fails on 6.12")
    };
    let refusal = KernelRefusal {
        node: "cn01".into(),
        uname: "6.12.117+deb13-amd64".into(),
        kernel: Kernel::new(6, 12),
        release: Release::new(7, 4, 4),
        reason,
    };
    let msg = refusal.to_string();
    assert!(
        msg.starts_with("cn01: the BeeGFS 7.4.4 client module does not build on Linux 6.12 (`6.12.117+deb13-amd64`): "),
        "{msg}"
    );
    assert!(
        msg.ends_with("; releases that build: 7.4.7 or later, 8.1.0 or later"),
        "{msg}"
    );
}
