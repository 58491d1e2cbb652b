"""mvmtui: a keyboard-driven console for KVM/libvirt clusters."""
__version__ = "0.1.0"
