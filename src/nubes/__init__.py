"""Nubes: a self-hostable IoT device cloud.

Devices speak FLAP over UDP (MAC envelope now, DTLS later); the gateway
answers them, the pipeline carries their messages to workers that decode and
store them. `bootstrap` wires the parts; `cli` is the `nubes` command.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
