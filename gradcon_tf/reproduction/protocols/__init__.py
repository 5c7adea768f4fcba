"""The experiments ``gradcon reproduce --protocol NAME`` runs, found by name.

Each is a :class:`~gradcon_tf.reproduction.protocols.base.Protocol` in a module of its own that
registers it (:func:`register`). Adding one to the package is that module and its line in
:data:`BUILT_IN`; code outside the package registers its own before calling ``gradcon``.
"""

import importlib

#: --protocol NAME -> the module that defines it, imported when the protocol is first asked for
#: (so that ``gradcon --help`` does not import TensorFlow).
BUILT_IN = {
    "one-class": "gradcon_tf.reproduction.protocols.one_class",
    "gpnd": "gradcon_tf.reproduction.protocols.gpnd",
    "conditions": "gradcon_tf.reproduction.protocols.conditions",
    "localisation": "gradcon_tf.reproduction.protocols.localisation",
    "elpv": "gradcon_tf.reproduction.protocols.elpv",
}

_REGISTERED = {}


def register(protocol):
    """Make the Protocol subclass ``protocol`` available by its ``name``; returns it, so that it
    serves as a class decorator."""
    _REGISTERED[protocol.name] = protocol
    return protocol


def names():
    """The names of the protocols: the built-in ones, then those registered from outside."""
    return (*BUILT_IN, *(name for name in _REGISTERED if name not in BUILT_IN))


def get(name):
    """The Protocol subclass called ``name``."""
    if name not in _REGISTERED and name in BUILT_IN:
        importlib.import_module(BUILT_IN[name])  # the module registers it
    if name not in _REGISTERED:
        raise ValueError(f"protocol must be one of {names()}, got {name!r}")
    return _REGISTERED[name]
