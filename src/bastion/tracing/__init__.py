"""Cases, exposures, contacts and the chains between them (流调): issue #4, the tracing half.

Layout: ``enums.py`` (the words), ``classify.py`` (pure rules), ``models.py`` (tables),
``cases.py`` (episodes), ``investigation.py`` (exposures, contacts, chains), ``expansion.py``
(set-based contact expansion), ``figures.py`` (bulletin figures); ``service.py`` is the one
module other domains import.
"""
