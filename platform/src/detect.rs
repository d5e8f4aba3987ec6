//! Hypervisor detection as pure logic over recorded [`Signals`].
//!
//! The probe modules gather the signals from the machine; [`decide`] weighs
//! them. Kept pure so every hypervisor's recorded inputs are unit-tested on
//! the host.
//!
//! # What `hypervisor=` means
//!
//! It names the virtual *platform* the guest runs on, the thing a user chose
//! ("I started it in VirtualBox"), not every interface it offers. The rules,
//! in order:
//!
//! 1. **Xen** when Xen's own interface is there: the `XenVMMXenVMM` CPUID
//!    leaf at any base (Xen with Viridian puts Hyper-V's leaf at 0x40000000
//!    and Xen's at 0x40000100) or a DT `/hypervisor` node `xen,xen*`. This
//!    matches Linux, where Xen's detection outranks the others.
//! 2. **A firmware identity** naming VMware, VirtualBox, Hyper-V, Xen or
//!    Firecracker, from SMBIOS type 1 (first), the ACPI FADT hypervisor
//!    vendor, or the ACPI OEM id. It wins over the CPUID engine: VirtualBox
//!    with its KVM paravirt interface shows `KVMKVMKVM` in CPUID and is still
//!    VirtualBox (systemd's `detect-virt` decides the same way).
//! 3. **Firecracker** by shape: KVM's CPUID leaf (or SMCCC UID) plus a
//!    virtio-mmio-only machine with no QEMU firmware tables.
//! 4. **The CPUID engine**: the KVM leaf wherever it is (KVM with Hyper-V
//!    enlightenments answers `Microsoft Hv` at 0x40000000 and moves KVM to
//!    0x40000100: the guest runs on KVM, so `hypervisor=kvm`, while
//!    [`Detection::hyperv_leaf`] still tells the clock code the Hyper-V
//!    reference TSC page is there), else TCG, else the first leaf's vendor.
//! 5. **arm64**: the SMCCC vendor hypervisor UID (KVM, Hyper-V); without an
//!    answer, QEMU's `linux,dummy-virt` machine is TCG.
//! 6. **Weak signals alone**: QEMU's SMBIOS / `BOCHS ` ACPI with the CPUID
//!    hypervisor bit but no signature means KVM with the signature hidden
//!    (`-cpu ...,kvm=off`; TCG always shows `TCGTCGTCGTCG`); the VMware
//!    backdoor alone means VMware. QEMU's `pc`/`q35` machines answer the
//!    backdoor too (`vmport` defaults on), so it only ever *confirms* VMware
//!    when anything else speaks.
//!
//! The interfaces found (KVM, Hyper-V, Xen leaves) are reported separately
//! in [`Detection`] so the clock and driver choice never depends on the name.

use arrayvec::{ArrayString, ArrayVec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypervisor {
    Kvm,
    /// QEMU without an accelerator (TCG).
    Tcg,
    Xen,
    HyperV,
    Vmware,
    VirtualBox,
    Firecracker,
    /// A hypervisor that is present (CPUID bit or signature) but not one
    /// Skiff knows: bhyve, ACRN, QNX, Parallels, ...
    Other,
    /// Bare metal, or nothing recognisable.
    None,
}

impl Hypervisor {
    pub fn name(self) -> &'static str {
        match self {
            Hypervisor::Kvm => "kvm",
            Hypervisor::Tcg => "tcg",
            Hypervisor::Xen => "xen",
            Hypervisor::HyperV => "hyperv",
            Hypervisor::Vmware => "vmware",
            Hypervisor::VirtualBox => "virtualbox",
            Hypervisor::Firecracker => "firecracker",
            Hypervisor::Other => "other",
            Hypervisor::None => "none",
        }
    }
}

/// One CPUID hypervisor leaf found in the 0x40000000..0x4000FF00 scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuidLeaf {
    /// 0x40000000 + n*0x100.
    pub base: u32,
    /// EAX: highest leaf in this range.
    pub max_leaf: u32,
    /// EBX, ECX, EDX as 12 bytes, in that order ("KVMKVMKVM\0\0\0",
    /// "XenVMMXenVMM", ...).
    pub signature: [u8; 12],
    /// For Hyper-V: CPUID 0x40000003 EAX (partition privileges) etc. may be
    /// recorded by the prober; 0 otherwise.
    pub extra: u32,
}

/// Every signal the probes gathered. Missing signals are `None`/empty.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// x86: CPUID.1:ECX bit 31 ("hypervisor present").
    pub cpuid_hypervisor_bit: bool,
    pub cpuid_leaves: ArrayVec<CpuidLeaf, 8>,
    /// VMware backdoor GETVERSION answered with the magic ('VMXh').
    pub vmware_backdoor: bool,
    pub smbios_manufacturer: Option<ArrayString<64>>,
    pub smbios_product: Option<ArrayString<64>>,
    /// RSDP/XSDT OEM id, 6 characters, spaces kept ("BOCHS ", "VBOX  ").
    pub acpi_oem_id: Option<ArrayString<8>>,
    /// FADT "hypervisor vendor identity": the 8 bytes at FADT offset 268
    /// read as a little-endian u64 (so `to_le_bytes()` gives the ASCII,
    /// e.g. "FIRECKVM", "MsHyperV").
    pub fadt_hypervisor_vendor: Option<u64>,
    /// DT `/hypervisor` compatible.
    pub dt_hypervisor: Option<ArrayString<64>>,
    /// DT root compatible / model.
    pub dt_model: Option<ArrayString<64>>,
    /// arm64 SMCCC vendor hypervisor service UID (4 words), if the call worked.
    pub smccc_hyp_uid: Option<[u32; 4]>,
    /// A virtio-mmio-only machine with no PCI and no firmware tables that
    /// QEMU would provide (Firecracker's shape): set by the prober.
    pub firecracker_shape: bool,
}

/// SMCCC `VENDOR_HYP_CALL_UID` answer of KVM (UUID
/// 28b46fb6-2ec5-11e9-a9ca-4b564d003a74), Linux `ARM_SMCCC_VENDOR_HYP_UID_KVM_REG_*`.
pub const SMCCC_UID_KVM: [u32; 4] = [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d];
/// SMCCC `VENDOR_HYP_CALL_UID` answer of Hyper-V on arm64 (GUID
/// 4d32ba58-cd24-4764-8eef-6c7516597024), Linux `ARM_SMCCC_VENDOR_HYP_UID_HYPERV_REG_*`.
pub const SMCCC_UID_HYPERV: [u32; 4] = [0x4d32_ba58, 0xcd24_4764, 0x8eef_6c75, 0x1659_7024];

/// Which signals decided, printed as `by=smbios+backdoor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evidence(u16);

impl Evidence {
    pub const NONE: Self = Self(0);
    pub const CPUID: Self = Self(1 << 0);
    pub const SMBIOS: Self = Self(1 << 1);
    pub const BACKDOOR: Self = Self(1 << 2);
    pub const ACPI_OEM: Self = Self(1 << 3);
    pub const FADT: Self = Self(1 << 4);
    pub const DT_HYPERVISOR: Self = Self(1 << 5);
    pub const SMCCC: Self = Self(1 << 6);
    pub const DT_MODEL: Self = Self(1 << 7);
    pub const SHAPE: Self = Self(1 << 8);

    const NAMES: [(Self, &'static str); 9] = [
        (Self::CPUID, "cpuid"),
        (Self::SMBIOS, "smbios"),
        (Self::BACKDOOR, "backdoor"),
        (Self::ACPI_OEM, "acpi-oem"),
        (Self::FADT, "fadt"),
        (Self::DT_HYPERVISOR, "dt-hypervisor"),
        (Self::SMCCC, "smccc"),
        (Self::DT_MODEL, "dt-model"),
        (Self::SHAPE, "shape"),
    ];

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::ops::BitOr for Evidence {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for Evidence {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl core::fmt::Display for Evidence {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for (bit, name) in Self::NAMES {
            if self.contains(bit) {
                if !first {
                    f.write_str("+")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A public cloud named by SMBIOS; drivers (ENA, gVNIC) key off it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Aws,
    Gcp,
}

impl Cloud {
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Gcp => "gcp",
        }
    }
}

/// The verdict of [`decide`], with what it rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    pub hypervisor: Hypervisor,
    /// The signals that agree with `hypervisor` and decided it.
    pub by: Evidence,
    /// Signals that named something else and were outranked (e.g. the KVM
    /// CPUID leaf under VirtualBox's KVM paravirt interface).
    pub overruled: Evidence,
    /// What the CPUID leaves alone say runs the VM (KVM, TCG, Xen, ...).
    pub cpuid_engine: Option<Hypervisor>,
    /// Base leaf of each paravirtual interface found, whatever the name:
    /// the clock and driver choice read these.
    pub kvm_leaf: Option<u32>,
    pub xen_leaf: Option<u32>,
    pub hyperv_leaf: Option<u32>,
    pub vmware_leaf: Option<u32>,
    pub cloud: Option<Cloud>,
}

impl core::fmt::Display for Detection {
    /// `detect: hypervisor=vmware by=smbios+backdoor cpuid=tcg`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "detect: hypervisor={} by={}",
            self.hypervisor.name(),
            self.by
        )?;
        if let Some(engine) = self.cpuid_engine.filter(|&e| e != self.hypervisor) {
            write!(f, " cpuid={}", engine.name())?;
        }
        if !self.overruled.is_empty() {
            write!(f, " overruled={}", self.overruled)?;
        }
        if let Some(cloud) = self.cloud {
            write!(f, " cloud={}", cloud.name())?;
        }
        Ok(())
    }
}

/// What one signal says. `Qemu` is QEMU's machine without saying which
/// accelerator; `Amazon`/`Google` are clouds on KVM today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Hv(Hypervisor),
    Qemu,
    Cloud(Cloud),
}

/// The vendor of a CPUID hypervisor leaf signature.
pub fn cpuid_vendor(sig: &[u8; 12]) -> Hypervisor {
    // Trailing NULs vary ("KVMKVMKVM\0\0\0", "QNXQVMBSQG\0\0").
    let len = sig.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    match &sig[..len] {
        b"KVMKVMKVM" | b"Linux KVM Hv" => Hypervisor::Kvm,
        b"TCGTCGTCGTCG" => Hypervisor::Tcg,
        b"XenVMMXenVMM" => Hypervisor::Xen,
        b"Microsoft Hv" => Hypervisor::HyperV,
        b"VMwareVMware" => Hypervisor::Vmware,
        b"VBoxVBoxVBox" => Hypervisor::VirtualBox,
        _ => Hypervisor::Other,
    }
}

fn smbios_claim(manufacturer: &str, product: &str) -> Option<Claim> {
    let m = manufacturer.trim();
    let p = product.trim();
    Some(match () {
        _ if m.starts_with("VMware") || m.starts_with("VMW") || p.starts_with("VMware") => {
            Claim::Hv(Hypervisor::Vmware)
        }
        _ if m == "innotek GmbH" || p == "VirtualBox" || m == "Oracle Corporation" => {
            Claim::Hv(Hypervisor::VirtualBox)
        }
        _ if m == "Microsoft Corporation" && p == "Virtual Machine" => {
            Claim::Hv(Hypervisor::HyperV)
        }
        _ if m == "Xen" || p == "HVM domU" => Claim::Hv(Hypervisor::Xen),
        _ if m == "Firecracker" => Claim::Hv(Hypervisor::Firecracker),
        _ if m == "Amazon EC2" || p.starts_with("Amazon EC2") => Claim::Cloud(Cloud::Aws),
        _ if m == "Google" || p == "Google Compute Engine" => Claim::Cloud(Cloud::Gcp),
        _ if m == "QEMU" || p == "KVM" || m == "Bochs" => Claim::Qemu,
        _ if m.starts_with("Parallels") || m == "BHYVE" || p == "BHYVE" => {
            Claim::Hv(Hypervisor::Other)
        }
        _ => return None,
    })
}

fn acpi_oem_claim(oem: &str) -> Option<Claim> {
    Some(match oem.trim_end() {
        "VBOX" => Claim::Hv(Hypervisor::VirtualBox),
        "VMWARE" => Claim::Hv(Hypervisor::Vmware),
        "VRTUAL" | "MSFTVM" => Claim::Hv(Hypervisor::HyperV),
        "Xen" => Claim::Hv(Hypervisor::Xen),
        "FIRECK" => Claim::Hv(Hypervisor::Firecracker),
        "BOCHS" | "BXPC" => Claim::Qemu,
        _ => return None,
    })
}

fn fadt_claim(vendor: u64) -> Option<Claim> {
    let b = vendor.to_le_bytes();
    Some(match &b {
        b"FIRECKVM" => Claim::Hv(Hypervisor::Firecracker),
        b"MsHyperV" => Claim::Hv(Hypervisor::HyperV),
        b"KVMKVMKV" => Claim::Hv(Hypervisor::Kvm),
        b"XenVMMXe" => Claim::Hv(Hypervisor::Xen),
        b"VMwareVM" => Claim::Hv(Hypervisor::Vmware),
        b"VBoxVBox" => Claim::Hv(Hypervisor::VirtualBox),
        // Unknown vendors (and the all-zero "not given") say nothing.
        _ => return None,
    })
}

fn dt_hypervisor_claim(compatible: &str) -> Option<Claim> {
    if compatible.starts_with("xen,xen") {
        Some(Claim::Hv(Hypervisor::Xen))
    } else if compatible == "linux,kvm" {
        Some(Claim::Hv(Hypervisor::Kvm))
    } else if compatible.contains("vmware") {
        Some(Claim::Hv(Hypervisor::Vmware))
    } else {
        None
    }
}

fn smccc_claim(uid: &[u32; 4]) -> Option<Claim> {
    match *uid {
        SMCCC_UID_KVM => Some(Claim::Hv(Hypervisor::Kvm)),
        SMCCC_UID_HYPERV => Some(Claim::Hv(Hypervisor::HyperV)),
        _ => None,
    }
}

/// Platform identities that name a hypervisor outright (rule 2).
fn is_platform_identity(h: Hypervisor) -> bool {
    matches!(
        h,
        Hypervisor::Vmware
            | Hypervisor::VirtualBox
            | Hypervisor::HyperV
            | Hypervisor::Xen
            | Hypervisor::Firecracker
    )
}

/// Whether a signal naming `said` is consistent with the verdict `hv`:
/// Firecracker runs on KVM, QEMU's machine runs on KVM or TCG, and the
/// `linux,dummy-virt` model is shared by QEMU and Firecracker.
fn consistent(said: Claim, e: Evidence, hv: Hypervisor) -> bool {
    match said {
        Claim::Hv(h) => h == hv || (h == Hypervisor::Kvm && hv == Hypervisor::Firecracker),
        Claim::Qemu => {
            matches!(hv, Hypervisor::Kvm | Hypervisor::Tcg)
                || (e == Evidence::DT_MODEL && hv == Hypervisor::Firecracker)
        }
        Claim::Cloud(_) => hv == Hypervisor::Kvm,
    }
}

/// Weighs every signal; see the module documentation for the rules.
pub fn decide(s: &Signals) -> Detection {
    let mut d = Detection {
        hypervisor: Hypervisor::None,
        by: Evidence::NONE,
        overruled: Evidence::NONE,
        cpuid_engine: None,
        kvm_leaf: None,
        xen_leaf: None,
        hyperv_leaf: None,
        vmware_leaf: None,
        cloud: None,
    };

    // Interfaces present in CPUID, first base of each vendor.
    let mut tcg_leaf = None;
    let mut first_vendor = None;
    for leaf in &s.cpuid_leaves {
        let vendor = cpuid_vendor(&leaf.signature);
        first_vendor.get_or_insert(vendor);
        let slot = match vendor {
            Hypervisor::Kvm => &mut d.kvm_leaf,
            Hypervisor::Xen => &mut d.xen_leaf,
            Hypervisor::HyperV => &mut d.hyperv_leaf,
            Hypervisor::Vmware => &mut d.vmware_leaf,
            Hypervisor::Tcg => &mut tcg_leaf,
            _ => continue,
        };
        slot.get_or_insert(leaf.base);
    }
    d.cpuid_engine = if d.xen_leaf.is_some() {
        Some(Hypervisor::Xen)
    } else if d.kvm_leaf.is_some() {
        Some(Hypervisor::Kvm)
    } else if tcg_leaf.is_some() {
        Some(Hypervisor::Tcg)
    } else if first_vendor.is_some() {
        first_vendor
    } else if s.cpuid_hypervisor_bit {
        Some(Hypervisor::Other)
    } else {
        None
    };

    // Every firmware claim, strongest source first.
    let mut claims: ArrayVec<(Claim, Evidence), 6> = ArrayVec::new();
    let smbios = match (&s.smbios_manufacturer, &s.smbios_product) {
        (None, None) => None,
        (m, p) => smbios_claim(
            m.as_ref().map_or("", |m| m.as_str()),
            p.as_ref().map_or("", |p| p.as_str()),
        ),
    };
    let mut push = |c: Option<Claim>, e: Evidence| {
        if let Some(c) = c {
            claims.push((c, e));
        }
    };
    push(smbios, Evidence::SMBIOS);
    push(
        s.fadt_hypervisor_vendor.and_then(fadt_claim),
        Evidence::FADT,
    );
    push(
        s.acpi_oem_id.as_deref().and_then(acpi_oem_claim),
        Evidence::ACPI_OEM,
    );
    push(
        s.dt_hypervisor.as_deref().and_then(dt_hypervisor_claim),
        Evidence::DT_HYPERVISOR,
    );
    push(
        s.smccc_hyp_uid.as_ref().and_then(smccc_claim),
        Evidence::SMCCC,
    );
    let dummy_virt = s.dt_model.as_deref() == Some("linux,dummy-virt");
    push(dummy_virt.then_some(Claim::Qemu), Evidence::DT_MODEL);

    d.cloud = claims.iter().find_map(|(c, _)| match c {
        Claim::Cloud(cloud) => Some(*cloud),
        _ => None,
    });
    let qemu_firmware = claims
        .iter()
        .any(|(c, e)| *c == Claim::Qemu && *e != Evidence::DT_MODEL);

    let (hv, by) = choose(s, &d, &claims, qemu_firmware);
    d.hypervisor = hv;
    d.by = by;

    // Everything that agrees joins `by`; what named another hypervisor is
    // reported as overruled.
    for &(c, e) in &claims {
        if consistent(c, e, hv) {
            d.by |= e;
        } else {
            d.overruled |= e;
        }
    }
    if let Some(engine) = d.cpuid_engine {
        if consistent(Claim::Hv(engine), Evidence::CPUID, hv) {
            d.by |= Evidence::CPUID;
        } else {
            d.overruled |= Evidence::CPUID;
        }
    }
    if s.vmware_backdoor {
        if hv == Hypervisor::Vmware {
            d.by |= Evidence::BACKDOOR;
        } else {
            d.overruled |= Evidence::BACKDOOR;
        }
    }
    if s.firecracker_shape && hv == Hypervisor::Firecracker {
        d.by |= Evidence::SHAPE;
    }
    d
}

/// The rules of the module documentation, in order. Returns the decision
/// and the signal that settled it (more agreeing ones are added later).
fn choose(
    s: &Signals,
    d: &Detection,
    claims: &[(Claim, Evidence)],
    qemu_firmware: bool,
) -> (Hypervisor, Evidence) {
    // 1. Xen's own interface.
    if d.xen_leaf.is_some() {
        return (Hypervisor::Xen, Evidence::CPUID);
    }
    if let Some((_, e)) = claims
        .iter()
        .find(|(c, e)| *c == Claim::Hv(Hypervisor::Xen) && *e == Evidence::DT_HYPERVISOR)
    {
        return (Hypervisor::Xen, *e);
    }
    // 2. A firmware identity (SMBIOS, FADT, ACPI OEM; in that order).
    let firmware = [Evidence::SMBIOS, Evidence::FADT, Evidence::ACPI_OEM];
    for source in firmware {
        for &(c, e) in claims {
            if e == source {
                if let Claim::Hv(h) = c {
                    if is_platform_identity(h) {
                        return (h, e);
                    }
                }
            }
        }
    }
    // 3. Firecracker's shape on KVM.
    let kvm_smccc = s.smccc_hyp_uid == Some(SMCCC_UID_KVM);
    if s.firecracker_shape && !qemu_firmware && (d.kvm_leaf.is_some() || kvm_smccc) {
        return (Hypervisor::Firecracker, Evidence::SHAPE);
    }
    // 4. The CPUID engine.
    if let Some(engine) = d.cpuid_engine.filter(|&e| e != Hypervisor::Other) {
        return (engine, Evidence::CPUID);
    }
    // 5. arm64: SMCCC UID, then QEMU's virt machine means TCG.
    if let Some(&(Claim::Hv(h), e)) = claims.iter().find(|(_, e)| *e == Evidence::SMCCC) {
        return (h, e);
    }
    // 6. Weak signals alone.
    let hidden_kvm = s.cpuid_hypervisor_bit && d.cpuid_engine == Some(Hypervisor::Other);
    if qemu_firmware {
        let e = claims
            .iter()
            .find(|(c, _)| *c == Claim::Qemu)
            .map_or(Evidence::NONE, |(_, e)| *e);
        // The x86 CPUID bit without a signature: KVM with kvm=off.
        return (
            if hidden_kvm {
                Hypervisor::Kvm
            } else {
                Hypervisor::Tcg
            },
            e,
        );
    }
    if claims.iter().any(|(_, e)| *e == Evidence::DT_MODEL) {
        return (Hypervisor::Tcg, Evidence::DT_MODEL);
    }
    if let Some(&(Claim::Hv(h), e)) = claims.iter().find(|(c, _)| matches!(c, Claim::Hv(_))) {
        // A FADT/DT claim of KVM with nothing else: believe it.
        return (h, e);
    }
    if s.vmware_backdoor {
        return (Hypervisor::Vmware, Evidence::BACKDOOR);
    }
    if claims.iter().any(|(c, _)| matches!(c, Claim::Cloud(_))) {
        // EC2 Nitro and GCE run on KVM.
        let e = claims
            .iter()
            .find(|(c, _)| matches!(c, Claim::Cloud(_)))
            .map_or(Evidence::NONE, |(_, e)| *e);
        return (Hypervisor::Kvm, e);
    }
    if d.cpuid_engine == Some(Hypervisor::Other) {
        return (Hypervisor::Other, Evidence::CPUID);
    }
    (Hypervisor::None, Evidence::NONE)
}

#[cfg(test)]
mod tests;
