"""Continual learning from feedback: a child run trained from a parent's model on new labelled data.

- :mod:`~domainfm.continual.replay`: the seeded reservoir that picks the parent's training rows to replay;
- :mod:`~domainfm.continual.head`: growing a classifier head for labels the parent never saw (old ids kept);
- :mod:`~domainfm.continual.regularisers`: L2-SP and EWC as :class:`~domainfm.engine.loss_terms.LossTerm` s;
- :mod:`~domainfm.continual.plan`: the child's, naive fine-tuning's and full retraining's data;
- :mod:`~domainfm.continual.measure`: gain on the new data, forgetting on the old;
- :mod:`~domainfm.continual.gate`: the promotion decision;
- :mod:`~domainfm.continual.lineage`: what a child records of its parent, and which runs may be served;
- :mod:`~domainfm.continual.improve`: ``domainfm improve``, all of the above through the normal run lifecycle.

torch and transformers are imported inside the functions.
"""
