/* A minimal PVH ELF for recording what QEMU hands a PVH kernel: it halts
 * with %ebx = start_info. Build: as --32 -o pvh.o pvh-probe.S &&
 * ld -m elf_i386 -Ttext=0x100000 -e _start -o pvh.elf pvh.o */
    .section .note.Xen, "a"
    .p2align 2
    .long 4f - 3f        /* namesz */
    .long 6f - 5f        /* descsz */
    .long 18             /* XEN_ELFNOTE_PHYS32_ENTRY */
3:  .asciz "Xen"
4:  .p2align 2
5:  .long _start
6:  .p2align 2
    .text
    .code32
    .globl _start
_start:
    mov %ebx, %eax       /* keep start_info in eax, ebx */
1:  hlt
    jmp 1b
