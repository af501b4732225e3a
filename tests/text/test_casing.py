from extract.text.casing import DIGIT, LOWER, MIXED, OTHER, TITLE, UPPER, casing_ids, shape_of


def test_shapes():
    assert shape_of("germany") == LOWER
    assert shape_of("Germany") == TITLE
    assert shape_of("EU") == UPPER
    assert shape_of("McDonald") == TITLE
    assert shape_of("eBay") == MIXED
    assert shape_of("1996-08-22") == DIGIT
    assert shape_of(".") == OTHER
    assert shape_of("北京") == OTHER
    assert shape_of("Zoë") == TITLE
    assert shape_of("A") == TITLE  # a single capital: Title, not UPPER


def test_casing_ids_read_original_text():
    text = "EU rejects German call"
    offsets = [(0, 2), (3, 10), (11, 17), (18, 22), (0, 0)]
    assert casing_ids(text, offsets) == [UPPER, LOWER, TITLE, LOWER, OTHER]
