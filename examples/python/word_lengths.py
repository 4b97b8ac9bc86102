"""A job in a module of its own: upload this file as a binary (Content-Type ``text/x-python``) named
``word_lengths`` and run it as ``mainClass=word_lengths:main``. ``length`` runs on the executors,
which import the module from the copy the driver gives them."""


def length(word):
    return len(word)


def main(spark, config):
    words = list(config.get("input.strings"))
    lengths = spark.sparkContext.parallelize(words, 2).map(length).collect()
    return dict(zip(words, lengths, strict=True))
