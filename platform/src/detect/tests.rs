//! One test per hypervisor with the signal set it presents (CPUID leaves,
//! SMBIOS type 1, ACPI ids, DT, SMCCC, VMware backdoor), then conflicting
//! and partial sets. Signatures and strings are those the hypervisors are
//! documented to expose (Linux `arch/x86/kernel/cpu/`, systemd `virt.c`,
//! QEMU `target/i386/cpu.c`, Firecracker `src/vmm/src/acpi`).

use super::*;

fn leaf(base: u32, sig: &[u8; 12]) -> CpuidLeaf {
    CpuidLeaf {
        base,
        max_leaf: base + 1,
        signature: *sig,
        extra: 0,
    }
}

fn st<const N: usize>(s: &str) -> Option<ArrayString<N>> {
    Some(ArrayString::from(s).unwrap())
}

const KVM: &[u8; 12] = b"KVMKVMKVM\0\0\0";
const TCG: &[u8; 12] = b"TCGTCGTCGTCG";
const XEN: &[u8; 12] = b"XenVMMXenVMM";
const HYPERV: &[u8; 12] = b"Microsoft Hv";
const VMWARE: &[u8; 12] = b"VMwareVMware";

/// QEMU q35 under TCG: `TCGTCGTCGTCG`, SMBIOS "QEMU", ACPI "BOCHS ", and
/// the VMware backdoor answers because QEMU's vmport is on by default.
fn qemu_q35_tcg() -> Signals {
    let mut s = Signals {
        cpuid_hypervisor_bit: true,
        vmware_backdoor: true,
        smbios_manufacturer: st("QEMU"),
        smbios_product: st("Standard PC (Q35 + ICH9, 2009)"),
        acpi_oem_id: st("BOCHS "),
        ..Signals::default()
    };
    s.cpuid_leaves.push(leaf(0x4000_0000, TCG));
    s
}

#[test]
fn tcg() {
    let d = decide(&qemu_q35_tcg());
    assert_eq!(d.hypervisor, Hypervisor::Tcg);
    assert_eq!(
        d.by,
        Evidence::CPUID | Evidence::SMBIOS | Evidence::ACPI_OEM
    );
    assert_eq!(
        d.overruled,
        Evidence::BACKDOOR,
        "QEMU's vmport is not VMware"
    );
    assert_eq!(d.kvm_leaf, None);
}

#[test]
fn tcg_microvm_without_firmware_tables() {
    // microvm with acpi=off: no SMBIOS, no ACPI, virtio-mmio only; the TCG
    // leaf decides even if the prober calls the shape Firecracker-like.
    let mut s = Signals {
        cpuid_hypervisor_bit: true,
        firecracker_shape: true,
        ..Default::default()
    };
    s.cpuid_leaves.push(leaf(0x4000_0000, TCG));
    let d = decide(&s);
    assert_eq!((d.hypervisor, d.by), (Hypervisor::Tcg, Evidence::CPUID));
}

#[test]
fn kvm() {
    let mut s = qemu_q35_tcg();
    s.cpuid_leaves.clear();
    s.cpuid_leaves.push(leaf(0x4000_0000, KVM));
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::Kvm);
    assert_eq!(d.kvm_leaf, Some(0x4000_0000));
    assert!(d.by.contains(Evidence::CPUID | Evidence::SMBIOS));
    assert_eq!(
        d.to_string(),
        "detect: hypervisor=kvm by=cpuid+smbios+acpi-oem overruled=backdoor"
    );
}

#[test]
fn kvm_with_hyperv_enlightenments_is_kvm() {
    // -cpu host,hv_relaxed,hv_time,...: Hyper-V at the base, KVM moved up.
    let mut s = qemu_q35_tcg();
    s.vmware_backdoor = false;
    s.cpuid_leaves.clear();
    s.cpuid_leaves.push(leaf(0x4000_0000, HYPERV));
    s.cpuid_leaves.push(leaf(0x4000_0100, KVM));
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::Kvm);
    assert_eq!(d.cpuid_engine, Some(Hypervisor::Kvm));
    assert_eq!(
        (d.kvm_leaf, d.hyperv_leaf),
        (Some(0x4000_0100), Some(0x4000_0000))
    );
    assert_eq!(d.overruled, Evidence::NONE);
}

#[test]
fn hyperv() {
    let mut s = Signals {
        cpuid_hypervisor_bit: true,
        smbios_manufacturer: st("Microsoft Corporation"),
        smbios_product: st("Virtual Machine"),
        acpi_oem_id: st("VRTUAL"),
        ..Default::default()
    };
    s.cpuid_leaves.push(leaf(0x4000_0000, HYPERV));
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::HyperV);
    assert_eq!(
        d.by,
        Evidence::CPUID | Evidence::SMBIOS | Evidence::ACPI_OEM
    );
    assert_eq!(d.hyperv_leaf, Some(0x4000_0000));
}

#[test]
fn hyperv_persona_under_tcg() {
    // The test board: QEMU TCG with Hyper-V's SMBIOS strings.
    let mut s = qemu_q35_tcg();
    s.smbios_manufacturer = st("Microsoft Corporation");
    s.smbios_product = st("Virtual Machine");
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::HyperV);
    assert_eq!(d.by, Evidence::SMBIOS);
    assert_eq!(
        d.overruled,
        Evidence::CPUID | Evidence::ACPI_OEM | Evidence::BACKDOOR
    );
    assert_eq!(
        d.to_string(),
        "detect: hypervisor=hyperv by=smbios cpuid=tcg overruled=cpuid+backdoor+acpi-oem"
    );
}

#[test]
fn xen_hvm_with_viridian() {
    // Xen with Viridian: Hyper-V's leaf first, Xen's at 0x40000100.
    let mut s = Signals {
        cpuid_hypervisor_bit: true,
        smbios_manufacturer: st("Xen"),
        smbios_product: st("HVM domU"),
        acpi_oem_id: st("Xen"),
        ..Default::default()
    };
    s.cpuid_leaves.push(leaf(0x4000_0000, HYPERV));
    s.cpuid_leaves.push(leaf(0x4000_0100, XEN));
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::Xen);
    assert_eq!(d.xen_leaf, Some(0x4000_0100));
    assert_eq!(
        d.by,
        Evidence::CPUID | Evidence::SMBIOS | Evidence::ACPI_OEM
    );
}

#[test]
fn xen_on_arm_dom0less() {
    // Xen's generated guest DT: /hypervisor compatible and root xen,xenvm.
    let s = Signals {
        dt_hypervisor: st("xen,xen-4.17"),
        dt_model: st("xen,xenvm-4.17"),
        ..Default::default()
    };
    let d = decide(&s);
    assert_eq!(
        (d.hypervisor, d.by),
        (Hypervisor::Xen, Evidence::DT_HYPERVISOR)
    );
}

#[test]
fn vmware() {
    let mut s = Signals {
        cpuid_hypervisor_bit: true,
        vmware_backdoor: true,
        smbios_manufacturer: st("VMware, Inc."),
        smbios_product: st("VMware Virtual Platform"),
        acpi_oem_id: st("PTLTD "),
        ..Default::default()
    };
    s.cpuid_leaves.push(leaf(0x4000_0000, VMWARE));
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::Vmware);
    assert_eq!(
        d.by,
        Evidence::CPUID | Evidence::SMBIOS | Evidence::BACKDOOR
    );
    assert_eq!(d.vmware_leaf, Some(0x4000_0000));
}

#[test]
fn vmware_persona_under_tcg() {
    // The vmware-x86_64 board: q35 + vmport + SMBIOS "VMware, Inc.".
    let mut s = qemu_q35_tcg();
    s.smbios_manufacturer = st("VMware, Inc.");
    s.smbios_product = st("VMware Virtual Platform");
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::Vmware);
    assert_eq!(d.by, Evidence::SMBIOS | Evidence::BACKDOOR);
    assert_eq!(d.cpuid_engine, Some(Hypervisor::Tcg));
    assert_eq!(
        d.to_string(),
        "detect: hypervisor=vmware by=smbios+backdoor cpuid=tcg overruled=cpuid+acpi-oem"
    );
}

#[test]
fn virtualbox_with_kvm_paravirt_interface() {
    // VirtualBox's "KVM" paravirtualization provider shows KVM's leaf; the
    // platform is still VirtualBox.
    let mut s = Signals {
        cpuid_hypervisor_bit: true,
        smbios_manufacturer: st("innotek GmbH"),
        smbios_product: st("VirtualBox"),
        acpi_oem_id: st("VBOX  "),
        ..Default::default()
    };
    s.cpuid_leaves.push(leaf(0x4000_0000, KVM));
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::VirtualBox);
    assert_eq!(d.by, Evidence::SMBIOS | Evidence::ACPI_OEM);
    assert_eq!(d.overruled, Evidence::CPUID);
    assert_eq!(d.kvm_leaf, Some(0x4000_0000), "kvmclock stays usable");
}

#[test]
fn virtualbox_persona_under_tcg() {
    let mut s = qemu_q35_tcg();
    s.vmware_backdoor = false;
    s.smbios_manufacturer = st("innotek GmbH");
    s.smbios_product = st("VirtualBox");
    let d = decide(&s);
    assert_eq!(
        (d.hypervisor, d.by),
        (Hypervisor::VirtualBox, Evidence::SMBIOS)
    );
}

#[test]
fn virtualbox_minimal_paravirt_without_smbios() {
    let mut s = Signals {
        cpuid_hypervisor_bit: true,
        ..Default::default()
    };
    s.cpuid_leaves.push(leaf(0x4000_0000, b"VBoxVBoxVBox"));
    assert_eq!(decide(&s).hypervisor, Hypervisor::VirtualBox);
}

#[test]
fn firecracker_x86_by_shape() {
    // Older Firecracker: no ACPI, no SMBIOS, virtio-mmio only, KVM's leaf.
    let mut s = Signals {
        cpuid_hypervisor_bit: true,
        firecracker_shape: true,
        ..Default::default()
    };
    s.cpuid_leaves.push(leaf(0x4000_0000, KVM));
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::Firecracker);
    assert_eq!(d.by, Evidence::CPUID | Evidence::SHAPE);
    assert_eq!(d.overruled, Evidence::NONE);
}

#[test]
fn firecracker_x86_with_acpi() {
    // Firecracker 1.8+: ACPI OEM "FIRECK", FADT hypervisor vendor "FIRECKVM".
    let mut s = Signals {
        cpuid_hypervisor_bit: true,
        acpi_oem_id: st("FIRECK"),
        fadt_hypervisor_vendor: Some(u64::from_le_bytes(*b"FIRECKVM")),
        ..Default::default()
    };
    s.cpuid_leaves.push(leaf(0x4000_0000, KVM));
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::Firecracker);
    assert_eq!(d.by, Evidence::CPUID | Evidence::ACPI_OEM | Evidence::FADT);
}

#[test]
fn firecracker_aarch64() {
    // Firecracker's DT also says linux,dummy-virt; KVM answers SMCCC.
    let s = Signals {
        smccc_hyp_uid: Some(SMCCC_UID_KVM),
        dt_model: st("linux,dummy-virt"),
        firecracker_shape: true,
        ..Default::default()
    };
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::Firecracker);
    assert_eq!(d.by, Evidence::SMCCC | Evidence::DT_MODEL | Evidence::SHAPE);
}

#[test]
fn qemu_virt_aarch64_tcg_and_kvm() {
    let mut s = Signals {
        dt_model: st("linux,dummy-virt"),
        ..Default::default()
    };
    let d = decide(&s);
    assert_eq!((d.hypervisor, d.by), (Hypervisor::Tcg, Evidence::DT_MODEL));
    s.smccc_hyp_uid = Some(SMCCC_UID_KVM);
    let d = decide(&s);
    assert_eq!(
        (d.hypervisor, d.by),
        (Hypervisor::Kvm, Evidence::SMCCC | Evidence::DT_MODEL)
    );
    // A UID from something unknown (Xen's, firmware's) is no claim.
    s.smccc_hyp_uid = Some([1, 2, 3, 4]);
    assert_eq!(decide(&s).hypervisor, Hypervisor::Tcg);
}

#[test]
fn hyperv_aarch64() {
    let s = Signals {
        smccc_hyp_uid: Some(SMCCC_UID_HYPERV),
        fadt_hypervisor_vendor: Some(u64::from_le_bytes(*b"MsHyperV")),
        ..Default::default()
    };
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::HyperV);
    assert_eq!(d.by, Evidence::FADT | Evidence::SMCCC);
}

#[test]
fn bare_metal() {
    let s = Signals {
        smbios_manufacturer: st("Dell Inc."),
        smbios_product: st("PowerEdge R650"),
        acpi_oem_id: st("DELL  "),
        ..Default::default()
    };
    let d = decide(&s);
    assert_eq!(
        (d.hypervisor, d.by, d.overruled),
        (Hypervisor::None, Evidence::NONE, Evidence::NONE)
    );
    assert_eq!(d.to_string(), "detect: hypervisor=none by=none");
    assert_eq!(decide(&Signals::default()).hypervisor, Hypervisor::None);
}

#[test]
fn unknown_hypervisors_are_other_not_none() {
    for sig in [b"bhyve bhyve ", b"ACRNACRNACRN", b"QNXQVMBSQG\0\0"] {
        let mut s = Signals {
            cpuid_hypervisor_bit: true,
            ..Default::default()
        };
        s.cpuid_leaves.push(leaf(0x4000_0000, sig));
        assert_eq!(decide(&s).hypervisor, Hypervisor::Other, "{sig:?}");
    }
    // The CPUID bit alone.
    let s = Signals {
        cpuid_hypervisor_bit: true,
        ..Default::default()
    };
    assert_eq!(decide(&s).hypervisor, Hypervisor::Other);
}

#[test]
fn clouds_on_kvm() {
    let mut s = Signals {
        cpuid_hypervisor_bit: true,
        smbios_manufacturer: st("Amazon EC2"),
        smbios_product: st("m7g.large"),
        ..Default::default()
    };
    s.cpuid_leaves.push(leaf(0x4000_0000, KVM));
    let d = decide(&s);
    assert_eq!((d.hypervisor, d.cloud), (Hypervisor::Kvm, Some(Cloud::Aws)));
    assert_eq!(d.by, Evidence::CPUID | Evidence::SMBIOS);
    let s = Signals {
        smbios_manufacturer: st("Google"),
        smbios_product: st("Google Compute Engine"),
        ..Default::default()
    };
    let d = decide(&s);
    assert_eq!((d.hypervisor, d.cloud), (Hypervisor::Kvm, Some(Cloud::Gcp)));
    assert_eq!(d.to_string(), "detect: hypervisor=kvm by=smbios cloud=gcp");
}

// ------------------------------------------------ conflicting and partial

#[test]
fn kvm_with_hidden_signature_on_qemu() {
    // -cpu host,kvm=off: hypervisor bit, no leaf, QEMU firmware.
    let mut s = qemu_q35_tcg();
    s.cpuid_leaves.clear();
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::Kvm);
    assert!(d.by.contains(Evidence::SMBIOS));
}

#[test]
fn backdoor_alone_is_vmware_but_not_on_qemu() {
    let s = Signals {
        vmware_backdoor: true,
        ..Default::default()
    };
    let d = decide(&s);
    assert_eq!(
        (d.hypervisor, d.by),
        (Hypervisor::Vmware, Evidence::BACKDOOR)
    );
    let s = Signals {
        vmware_backdoor: true,
        acpi_oem_id: st("BOCHS "),
        ..Default::default()
    };
    assert_eq!(decide(&s).hypervisor, Hypervisor::Tcg);
}

#[test]
fn smbios_outranks_acpi_oem_when_they_disagree() {
    let s = Signals {
        smbios_manufacturer: st("VMware, Inc."),
        acpi_oem_id: st("VBOX  "),
        ..Default::default()
    };
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::Vmware);
    assert_eq!((d.by, d.overruled), (Evidence::SMBIOS, Evidence::ACPI_OEM));
}

#[test]
fn xen_interface_outranks_firmware_strings() {
    // QEMU's Xen emulation under KVM: Xen's leaf and QEMU's firmware.
    let mut s = qemu_q35_tcg();
    s.vmware_backdoor = false;
    s.cpuid_leaves.clear();
    s.cpuid_leaves.push(leaf(0x4000_0000, XEN));
    s.cpuid_leaves.push(leaf(0x4000_0100, KVM));
    s.smbios_manufacturer = st("VMware, Inc.");
    let d = decide(&s);
    assert_eq!(d.hypervisor, Hypervisor::Xen);
    assert_eq!(
        (d.xen_leaf, d.kvm_leaf),
        (Some(0x4000_0000), Some(0x4000_0100))
    );
    assert!(d.overruled.contains(Evidence::SMBIOS));
}

#[test]
fn firecracker_shape_is_ignored_on_qemu_firmware() {
    // QEMU microvm under KVM with ACPI on: BOCHS tables, KVM leaf.
    let mut s = Signals {
        cpuid_hypervisor_bit: true,
        firecracker_shape: true,
        acpi_oem_id: st("BOCHS "),
        ..Default::default()
    };
    s.cpuid_leaves.push(leaf(0x4000_0000, KVM));
    assert_eq!(decide(&s).hypervisor, Hypervisor::Kvm);
}

#[test]
fn partial_smbios_strings() {
    // Only a product string.
    let s = Signals {
        smbios_product: st("VirtualBox"),
        ..Default::default()
    };
    assert_eq!(decide(&s).hypervisor, Hypervisor::VirtualBox);
    // Empty strings are no claim.
    let s = Signals {
        smbios_manufacturer: st(""),
        smbios_product: st(""),
        ..Default::default()
    };
    assert_eq!(decide(&s).hypervisor, Hypervisor::None);
    // Unknown FADT vendor is no claim either.
    let s = Signals {
        fadt_hypervisor_vendor: Some(u64::from_le_bytes(*b"SOMEVEND")),
        ..Default::default()
    };
    assert_eq!(decide(&s).hypervisor, Hypervisor::None);
}

#[test]
fn cpuid_vendor_names() {
    assert_eq!(cpuid_vendor(KVM), Hypervisor::Kvm);
    assert_eq!(cpuid_vendor(b"Linux KVM Hv"), Hypervisor::Kvm);
    assert_eq!(cpuid_vendor(TCG), Hypervisor::Tcg);
    assert_eq!(cpuid_vendor(XEN), Hypervisor::Xen);
    assert_eq!(cpuid_vendor(HYPERV), Hypervisor::HyperV);
    assert_eq!(cpuid_vendor(VMWARE), Hypervisor::Vmware);
    assert_eq!(cpuid_vendor(&[0; 12]), Hypervisor::Other);
}
