"""Experiment types: what an experiment is (:mod:`.base`), the built-in ``time_series`` (Prophet) and
``fault_detection`` (scikit-learn) types with their figures, and EDA figures for any table. Types
never import the hub: the hub calls them."""
