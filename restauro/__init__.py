"""Restauro: restoration of damaged scans of paintings with cluster-specialised DCGANs.

The domain core. It knows images, masks, features, clusters, DCGANs, z-optimization and bundles,
and imports no web, queue or CLI framework: ``service/``, ``worker/`` and ``training/`` are thin
adapters over it.
"""

__version__ = "0.1.0"
