/* Test harness for the x86_64 64-bit Linux boot protocol entry
 * (`_start_linux64`, the kernel ELF's e_entry), which QEMU cannot start
 * directly: this PVH ELF turns PVH start_info into a Linux boot_params zero
 * page at 0x90000 (cmdline, RSDP, E820), enters long mode on identity page
 * tables (first 1 GiB, 2 MiB pages) with the Linux __BOOT_CS/__BOOT_DS
 * selectors, and jumps to SKIFF_ENTRY with %rsi = boot_params, as a 64-bit
 * loader (Firecracker, an EFI stub) would. The kernel is loaded by QEMU's
 * generic loader at its physical addresses. Not part of the kernel image.
 *
 *   K=target/x86_64-unknown-none/debug/skiff-kernel
 *   E=$(readelf -h $K | awk '/Entry point/ {print $4}')
 *   as --64 -o shim.o linux64-shim.S
 *   ld -m elf_x86_64 -Ttext=0x100000 --defsym=SKIFF_ENTRY=$E -e _start -o shim.elf shim.o
 *   qemu-system-x86_64 -M microvm,acpi=off -accel tcg -m 256 -nographic \
 *       -kernel shim.elf -device loader,file=$K -append 'ktest=1 debug_exit=1' \
 *       -device isa-debug-exit,iobase=0xf4,iosize=0x04
 *
 * The kernel then prints `skiff: booting protocol=linux ...`.
 */
    .section .note.Xen, "a"
    .p2align 2
    .long 4, 8, 18
    .asciz "Xen"
    .p2align 2
    .quad _start

    .text
    .code32
    .globl _start
_start:
    cli
    cld
    mov $stack_top, %esp
    mov %ebx, %esi
    mov $0x90000, %edi
    mov $1024, %ecx
    xor %eax, %eax
    rep stosl
    movl $0x53726448, 0x90202
    movw $0x020f, 0x90206
    movw $0xaa55, 0x901fe
    mov 24(%esi), %eax
    mov %eax, 0x90228
    movl $4095, 0x90238
    mov 32(%esi), %eax
    mov %eax, 0x90070
    mov 36(%esi), %eax
    mov %eax, 0x90074
    mov 48(%esi), %ecx
    cmp $128, %ecx
    jbe 1f
    mov $128, %ecx
1:  mov %cl, 0x901e8
    mov 40(%esi), %esi
    mov $0x902d0, %edi
2:  test %ecx, %ecx
    jz 3f
    mov (%esi), %eax;   mov %eax, (%edi)
    mov 4(%esi), %eax;  mov %eax, 4(%edi)
    mov 8(%esi), %eax;  mov %eax, 8(%edi)
    mov 12(%esi), %eax; mov %eax, 12(%edi)
    mov 16(%esi), %eax; mov %eax, 16(%edi)
    add $24, %esi
    add $20, %edi
    dec %ecx
    jmp 2b
3:
    /* identity map the first 1 GiB with 2 MiB pages */
    mov $pd, %edi
    xor %ecx, %ecx
4:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%edi,%ecx,8)
    movl $0, 4(%edi,%ecx,8)
    inc %ecx
    cmp $512, %ecx
    jb 4b
    mov $pd, %eax
    or $3, %eax
    mov %eax, pdpt
    mov $pdpt, %eax
    or $3, %eax
    mov %eax, pml4
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    lgdt gdtr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    ljmp $0x10, $long

    .code64
long:
    mov $0x18, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $0x90000, %esi
    mov $SKIFF_ENTRY, %eax
    jmp *%rax

    .data
    .p2align 4
gdt:
    .quad 0, 0
    .quad 0x00af9a000000ffff   /* 0x10 __BOOT_CS */
    .quad 0x00cf92000000ffff   /* 0x18 __BOOT_DS */
gdt_end:
gdtr:
    .word gdt_end - gdt - 1
    .long gdt

    .bss
    .p2align 12
pml4: .skip 4096
pdpt: .skip 4096
pd:   .skip 4096
    .skip 4096
stack_top:
