//! Which config keys each daemon of each release accepts.
//!
//! The lists are the keys each daemon's `applyConfigMap` compares (and the client module's
//! `Config.c`), per release line, from BeeGFS's own source as recorded in the project's BeeGFS
//! reference (§1.2). A daemon accepts the common keys plus its own; the meta and storage
//! daemons and the 7.x client refuse to start on anything else, the 8.x mgmtd refuses
//! unknown TOML keys, and the 8.x client silently skips unknown keys — hpc-up refuses them
//! all before anything is written.

use std::collections::BTreeSet;
use std::fmt;

use crate::release::{Line, Release};

/// A BeeGFS service with a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Daemon {
    /// Management: `beegfs-mgmtd.conf` (7.x) or `beegfs-mgmtd.toml` (8.x).
    Mgmtd,
    /// Metadata: `beegfs-meta.conf`.
    Meta,
    /// Storage: `beegfs-storage.conf`.
    Storage,
    /// Client kernel module: `beegfs-client.conf`.
    Client,
    /// Helper daemon (7.x only): `beegfs-helperd.conf`.
    Helperd,
}

impl Daemon {
    /// Every daemon, in start order.
    pub const ALL: [Daemon; 5] = [
        Daemon::Mgmtd,
        Daemon::Meta,
        Daemon::Storage,
        Daemon::Helperd,
        Daemon::Client,
    ];

    /// The program / service name, e.g. `beegfs-meta`.
    pub fn service(self) -> &'static str {
        match self {
            Self::Mgmtd => "beegfs-mgmtd",
            Self::Meta => "beegfs-meta",
            Self::Storage => "beegfs-storage",
            Self::Client => "beegfs-client",
            Self::Helperd => "beegfs-helperd",
        }
    }

    /// Short name used in the cluster file (`extra-config.<name>`).
    pub fn short(self) -> &'static str {
        match self {
            Self::Mgmtd => "mgmtd",
            Self::Meta => "meta",
            Self::Storage => "storage",
            Self::Client => "client",
            Self::Helperd => "helperd",
        }
    }

    /// The config file's name in `/etc/beegfs/` for `release`.
    pub fn config_file(self, release: Release) -> &'static str {
        match self {
            Self::Mgmtd if release.is_v8() => "beegfs-mgmtd.toml",
            Self::Mgmtd => "beegfs-mgmtd.conf",
            Self::Meta => "beegfs-meta.conf",
            Self::Storage => "beegfs-storage.conf",
            Self::Client => "beegfs-client.conf",
            Self::Helperd => "beegfs-helperd.conf",
        }
    }

    /// Whether `release` has this daemon at all (helperd was removed in 8.0).
    pub fn exists_in(self, release: Release) -> bool {
        !(self == Self::Helperd && release.is_v8())
    }
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.service())
    }
}

/// Keys every user-space C++ daemon accepts (`AbstractConfig`), 7.4.
const COMMON_7: &[&str] = &[
    "logLevel",
    "logNoDate",
    "logStdFile",
    "logNumLines",
    "logNumRotatedFiles",
    "connPortShift",
    "connClientPortUDP",
    "connStoragePortUDP",
    "connMetaPortUDP",
    "connMonPortUDP",
    "connMgmtdPortUDP",
    "connStoragePortTCP",
    "connMetaPortTCP",
    "connHelperdPortTCP",
    "connMgmtdPortTCP",
    "connUseRDMA",
    "connBacklogTCP",
    "connMaxInternodeNum",
    "connNonPrimaryExpiration",
    "connFallbackExpirationSecs",
    "connRDMABufSize",
    "connRDMABufNum",
    "connRDMATypeOfService",
    "connNetFilterFile",
    "connAuthFile",
    "connDisableAuthentication",
    "connTcpOnlyFilterFile",
    "connRestrictOutboundInterfaces",
    "connNoDefaultRoute",
    "connMessagingTimeouts",
    "connRDMATimeouts",
    "sysMgmtdHost",
    "sysUpdateTargetStatesSecs",
];

/// 8.x single port keys (one key per service for TCP and UDP).
const PORTS_8: &[&str] = &[
    "connClientPort",
    "connStoragePort",
    "connMetaPort",
    "connMonPort",
    "connMgmtdPort",
];

const META_OWN_7: &[&str] = &[
    "logType",
    "connInterfacesFile",
    "connInterfacesList",
    "connTCPRcvBufSize",
    "connUDPRcvBufSize",
    "storeMetaDirectory",
    "storeFsUUID",
    "storeAllowFirstRunInit",
    "storeUseExtendedAttribs",
    "storeSelfHealEmptyFiles",
    "storeClientXAttrs",
    "storeClientACLs",
    "sysTargetAttachmentFile",
    "tuneNumStreamListeners",
    "tuneNumWorkers",
    "tuneWorkerBufSize",
    "tuneNumCommSlaves",
    "tuneCommSlaveBufSize",
    "tuneDefaultChunkSize",
    "tuneDefaultNumStripeTargets",
    "tuneDefaultNumStripeNodes",
    "tuneProcessFDLimit",
    "tuneWorkerNumaAffinity",
    "tuneListenerNumaAffinity",
    "tuneBindToNumaZone",
    "tuneListenerPrioShift",
    "tuneDirMetadataCacheLimit",
    "tuneTargetChooser",
    "tuneLockGrantWaitMS",
    "tuneLockGrantNumRetries",
    "tuneRotateMirrorTargets",
    "tuneEarlyUnlinkResponse",
    "tuneUsePerUserMsgQueues",
    "tuneUseAggressiveStreamPoll",
    "tuneNumResyncSlaves",
    "tuneMirrorTimestamps",
    "tuneDisposalGCPeriod",
    "quotaEarlyChownResponse",
    "quotaEnableEnforcement",
    "sysTargetOfflineTimeoutSecs",
    "sysAllowUserSetPattern",
    "sysFileEventLogTarget",
    "runDaemonized",
    "pidFile",
];

const STORAGE_OWN_7: &[&str] = &[
    "logType",
    "connInterfacesFile",
    "connInterfacesList",
    "connTCPRcvBufSize",
    "connUDPRcvBufSize",
    "storeStorageDirectory",
    "storeFsUUID",
    "storeAllowFirstRunInit",
    "tuneNumStreamListeners",
    "tuneNumWorkers",
    "tuneWorkerBufSize",
    "tuneProcessFDLimit",
    "tuneWorkerNumaAffinity",
    "tuneListenerNumaAffinity",
    "tuneListenerPrioShift",
    "tuneBindToNumaZone",
    "tuneFileReadSize",
    "tuneFileReadAheadTriggerSize",
    "tuneFileReadAheadSize",
    "tuneFileWriteSize",
    "tuneFileWriteSyncSize",
    "tuneUsePerUserMsgQueues",
    "tuneDirCacheLimit",
    "tuneEarlyStat",
    "tuneNumResyncSlaves",
    "tuneNumResyncGatherSlaves",
    "tuneUseAggressiveStreamPoll",
    "tuneUsePerTargetWorkers",
    "quotaEnableEnforcement",
    "quotaDisableZfsSupport",
    "sysResyncSafetyThresholdMins",
    "sysTargetOfflineTimeoutSecs",
    "runDaemonized",
    "pidFile",
];

const HELPERD_OWN_7: &[&str] = &[
    "logType",
    "connInterfacesFile",
    "tuneNumWorkers",
    "runDaemonized",
    "pidFile",
];

const MGMTD_OWN_7: &[&str] = &[
    "logType",
    "connInterfacesFile",
    "connInterfacesList",
    "storeMgmtdDirectory",
    "storeAllowFirstRunInit",
    "tuneNumWorkers",
    "tuneNumQuotaWorkers",
    "tuneMetaNodeAutoRemoveMins",
    "tuneStorageNodeAutoRemoveMins",
    "tuneClientAutoRemoveMins",
    "tuneMetaSpaceLowLimit",
    "tuneMetaSpaceEmergencyLimit",
    "tuneMetaInodesLowLimit",
    "tuneMetaInodesEmergencyLimit",
    "tuneMetaDynamicPools",
    "tuneMetaSpaceNormalSpreadThreshold",
    "tuneMetaSpaceLowSpreadThreshold",
    "tuneMetaSpaceLowDynamicLimit",
    "tuneMetaSpaceEmergencyDynamicLimit",
    "tuneMetaInodesNormalSpreadThreshold",
    "tuneMetaInodesLowSpreadThreshold",
    "tuneMetaInodesLowDynamicLimit",
    "tuneMetaInodesEmergencyDynamicLimit",
    "tuneStorageSpaceLowLimit",
    "tuneStorageSpaceEmergencyLimit",
    "tuneStorageInodesLowLimit",
    "tuneStorageInodesEmergencyLimit",
    "tuneStorageDynamicPools",
    "tuneStorageSpaceNormalSpreadThreshold",
    "tuneStorageSpaceLowSpreadThreshold",
    "tuneStorageSpaceLowDynamicLimit",
    "tuneStorageSpaceEmergencyDynamicLimit",
    "tuneStorageInodesNormalSpreadThreshold",
    "tuneStorageInodesLowSpreadThreshold",
    "tuneStorageInodesLowDynamicLimit",
    "tuneStorageInodesEmergencyDynamicLimit",
    "tuneProcessFDLimit",
    "sysAllowNewServers",
    "sysAllowNewTargets",
    "sysTargetOfflineTimeoutSecs",
    "runDaemonized",
    "pidFile",
    "quotaEnableEnforcement",
    "quotaUpdateIntervalMin",
    "quotaStoreIntervalMin",
    "quotaQueryType",
    "quotaQueryUIDFile",
    "quotaQueryGIDFile",
    "quotaQueryUIDRange",
    "quotaQueryGIDRange",
    "quotaQueryWithSystemUsersGroups",
];

/// The 8.x management service's TOML keys (`deny_unknown_fields`). Of the tables, the two
/// static capacity-pool tables, written as dotted keys (`cap-pool-storage-limits.space-low`),
/// which the service reads as its tables (checked with 8.1.0's `beegfs-mgmtd --init`: a
/// table missing one of its four keys is refused, "missing field `space-low`").
const MGMTD_TOML_8: &[&str] = &[
    "cap-pool-meta-limits.inodes-low",
    "cap-pool-meta-limits.inodes-emergency",
    "cap-pool-meta-limits.space-low",
    "cap-pool-meta-limits.space-emergency",
    "cap-pool-storage-limits.inodes-low",
    "cap-pool-storage-limits.inodes-emergency",
    "cap-pool-storage-limits.space-low",
    "cap-pool-storage-limits.space-emergency",
    "db-file",
    "log-target",
    "log-level",
    "beemsg-port",
    "grpc-port",
    "port-shift",
    "tls-disable",
    "tls-cert-file",
    "tls-key-file",
    "interfaces",
    "connection-limit",
    "auth-disable",
    "auth-file",
    "registration-disable",
    "node-offline-timeout",
    "client-auto-remove-timeout",
    "license-disable",
    "license-cert-file",
    "license-lib-file",
    "max-blocking-threads",
    "quota-enable",
    "quota-enforce",
    "quota-update-interval",
    "quota-user-system-ids-min",
    "quota-group-system-ids-min",
    "quota-user-ids-file",
    "quota-group-ids-file",
    "quota-user-ids-range",
    "quota-group-ids-range",
    "daemonize",
    "daemonize-pid-file",
];

const CLIENT_7: &[&str] = &[
    "logLevel",
    "logClientID",
    "logHelperdIP",
    "logType",
    "connPortShift",
    "connClientPortUDP",
    "connMgmtdPortUDP",
    "connHelperdPortTCP",
    "connMgmtdPortTCP",
    "connUseRDMA",
    "connTCPFallbackEnabled",
    "connMaxInternodeNum",
    "connInterfacesFile",
    "connInterfacesList",
    "connRDMAInterfacesFile",
    "connFallbackExpirationSecs",
    "connCommRetrySecs",
    "connUnmountRetries",
    "connTCPRcvBufSize",
    "connUDPRcvBufSize",
    "connRDMABufSize",
    "connRDMAFragmentSize",
    "connRDMABufNum",
    "connRDMAMetaBufSize",
    "connRDMAMetaFragmentSize",
    "connRDMAMetaBufNum",
    "connRDMATypeOfService",
    "connRDMAKeyType",
    "connNetFilterFile",
    "connMaxConcurrentAttempts",
    "connAuthFile",
    "connDisableAuthentication",
    "connTcpOnlyFilterFile",
    "connMessagingTimeouts",
    "connRDMATimeouts",
    "tunePreferredMetaFile",
    "tunePreferredStorageFile",
    "tuneFileCacheType",
    "tuneFileCacheBufSize",
    "tuneFileCacheBufNum",
    "tunePageCacheValidityMS",
    "tuneDirSubentryCacheValidityMS",
    "tuneFileSubentryCacheValidityMS",
    "tuneENOENTCacheValidityMS",
    "tunePathBufSize",
    "tunePathBufNum",
    "tuneMsgBufSize",
    "tuneMsgBufNum",
    "tuneRemoteFSync",
    "tuneUseGlobalFileLocks",
    "tuneRefreshOnGetAttr",
    "tuneInodeBlockBits",
    "tuneEarlyCloseResponse",
    "tuneUseGlobalAppendLocks",
    "tuneUseBufferedAppend",
    "tuneStatFsCacheSecs",
    "tuneCoherentBuffers",
    "sysMgmtdHost",
    "sysInodeIDStyle",
    "sysCreateHardlinksAsSymlinks",
    "sysMountSanityCheckMS",
    "sysSyncOnClose",
    "sysSessionCheckOnClose",
    "sysSessionChecksEnabled",
    "sysUpdateTargetStatesSecs",
    "sysTargetOfflineTimeoutSecs",
    "sysXAttrsEnabled",
    "sysXAttrsCheckCapabilities",
    "sysACLsEnabled",
    "quotaEnabled",
    "sysFileEventLogMask",
    "sysRenameEbusyAsXdev",
    "remapConnectionFailureStatus",
];

/// Keys the client module accepts and ignores (no effect): refused by hpc-up with a hint.
const CLIENT_IGNORED: &[&str] = &[
    "connNonPrimaryExpiration",
    "connNumCommRetries",
    "debugFindOtherNodes",
    "logNoDate",
    "logNumLines",
    "logNumRotatedFiles",
    "logStdFile",
    "sysNoEnterpriseFeatureMsg",
    "tuneAllowMultiSetRead",
    "tuneAllowMultiSetWrite",
    "tuneAttribCacheValidityMS",
    "tuneInodeBlockSize",
    "tuneMaxClientMirrorSize",
    "tuneMaxReadWorks",
    "tuneMaxReadWriteNodesNum",
    "tuneMaxReadWriteNum",
    "tuneMaxWriteWorks",
    "tuneNumRetryWorkers",
    "tuneNumWorkers",
    "tunePagedIOBufNum",
    "tunePagedIOBufSize",
];

/// The keys `daemon` of `release` accepts. Empty for a daemon the release does not have.
pub fn accepted_keys(daemon: Daemon, release: Release) -> BTreeSet<&'static str> {
    let line = release.line();
    let mut keys: BTreeSet<&'static str> = BTreeSet::new();
    if !daemon.exists_in(release) {
        return keys;
    }
    let common = |keys: &mut BTreeSet<&'static str>| {
        keys.extend(COMMON_7);
        if line >= Line::V8_0 {
            keys.remove("connHelperdPortTCP");
            keys.extend(PORTS_8);
        }
        if line >= Line::V8_3 {
            keys.insert("connDisableIPv6");
        }
    };
    match daemon {
        Daemon::Mgmtd if line >= Line::V8_0 => {
            keys.extend(MGMTD_TOML_8);
            if line < Line::V8_3 {
                keys.remove("interfaces");
            } else {
                keys.insert("ipv6-disable");
            }
        }
        Daemon::Mgmtd => {
            common(&mut keys);
            keys.extend(MGMTD_OWN_7);
        }
        Daemon::Meta => {
            common(&mut keys);
            keys.extend(META_OWN_7);
            if line >= Line::V8_1 {
                keys.extend(["sysFileEventPersistDirectory", "sysFileEventPersistSize"]);
            }
            if line >= Line::V8_3 {
                keys.extend([
                    "tuneChunkBalanceQueueLimit",
                    "tuneChunkBalanceLockingTimeLimit",
                ]);
            }
        }
        Daemon::Storage => {
            common(&mut keys);
            keys.extend(STORAGE_OWN_7);
            if line >= Line::V8_3 {
                keys.insert("tuneChunkBalanceQueueLimit");
            }
        }
        Daemon::Helperd => {
            common(&mut keys);
            keys.extend(HELPERD_OWN_7);
        }
        Daemon::Client => {
            keys.extend(CLIENT_7);
            if line >= Line::V8_0 {
                // Obsolete in 8.x: accepted and ignored ("Ignoring obsolete config argument").
                for k in ["logType", "logHelperdIP", "connHelperdPortTCP"] {
                    keys.remove(k);
                }
                keys.extend([
                    "connClientPort",
                    "connMgmtdPort",
                    "sysCacheInvalidationVersion",
                    "sysBypassFileAccessCheckOnMeta",
                ]);
            }
            if line >= Line::V8_3 {
                keys.extend([
                    "connDisableIPv6",
                    "sysSELinuxEnabled",
                    "sysSELinuxRevalidate",
                    "sysACLsRevalidate",
                    "tuneFileOpenRetryTimeoutMS",
                    "tuneFileOpenRetryIntervalMS",
                ]);
            }
        }
    }
    keys
}

/// In 8.x, the deprecated TCP/UDP port key and the single key that replaces it. The
/// daemons still accept them (and fail when they disagree); hpc-up writes only the new form.
pub fn deprecated_replacement(key: &str, release: Release) -> Option<&'static str> {
    if !release.is_v8() {
        return None;
    }
    Some(match key {
        "connClientPortUDP" => "connClientPort",
        "connStoragePortUDP" | "connStoragePortTCP" => "connStoragePort",
        "connMetaPortUDP" | "connMetaPortTCP" => "connMetaPort",
        "connMonPortUDP" => "connMonPort",
        "connMgmtdPortUDP" | "connMgmtdPortTCP" => "connMgmtdPort",
        _ => return None,
    })
}

/// Why a key is wrong for `daemon`, when it is a known mistake (the reference's §1.3 and §3).
pub(crate) fn hint(daemon: Daemon, key: &str, release: Release) -> Option<String> {
    let server = matches!(daemon, Daemon::Meta | Daemon::Storage);
    let s = match key {
        "quotaEnabled" if server || daemon == Daemon::Mgmtd => {
            "a client key; the servers use `quotaEnableEnforcement`".into()
        }
        "sysMountSanityCheckMS" | "tuneFileCacheType" | "logHelperdIP" if daemon != Daemon::Client => {
            "a client-only key".into()
        }
        "sysACLsEnabled" | "sysXAttrsEnabled" if daemon == Daemon::Meta => {
            "a client key; the metadata service uses `storeClientACLs` / `storeClientXAttrs`".into()
        }
        "sysACLsEnabled" | "sysXAttrsEnabled" if daemon != Daemon::Client => {
            "a client key".into()
        }
        "connClientPortTCP" => "no such key in any release (the client port is UDP only)".into(),
        "connHelperdPortTCP" if release.is_v8() => {
            "the helper daemon was removed in 8.0; the 8.x meta and storage daemons refuse this key".into()
        }
        "storeStorageDirectory" if daemon == Daemon::Meta => {
            "a storage key; the metadata service uses `storeMetaDirectory`".into()
        }
        "storeUseExtendedAttribs" | "storeClientACLs" | "storeClientXAttrs" | "tuneTargetChooser"
            if daemon == Daemon::Storage =>
        {
            "a metadata-service key".into()
        }
        "sysFileEventPersistDirectory" | "sysFileEventPersistSize" if !release.is_v8() => {
            "new in 8.1".into()
        }
        k if PORTS_8.contains(&k) && !release.is_v8() => {
            "an 8.x single port key; 7.4 uses the `…PortTCP` / `…PortUDP` pairs".into()
        }
        k if CLIENT_IGNORED.contains(&k) && daemon == Daemon::Client => {
            "the client module accepts it but ignores it".into()
        }
        k if daemon == Daemon::Mgmtd && release.is_v8() && k.chars().any(|c| c.is_ascii_uppercase()) => {
            "the 8.x management service reads TOML with kebab-case keys (`beemsg-port`, `auth-file`, …)".into()
        }
        _ => return None,
    };
    Some(s)
}
