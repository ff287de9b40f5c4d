"""Face detection and alignment: raw photos -> aligned face crops, a recorded part of a version's
input pipeline. ``spec`` (what to do, stored in the registry), ``detect`` (where the faces are),
``crop`` (how a face becomes a crop). Import the modules directly; nothing heavy loads here."""
