"""Near-duplicate similarity on synthetic and real photos."""

import pytest
from PIL import Image

from maskdetect.data import near_duplicates as nd
from tests.samples import photo


def _features(image: Image.Image, tmp_path, name: str) -> nd.Features:
    path = tmp_path / f"{name}.png"
    image.save(path)
    return nd.image_features(path)


def _paste_mask(image: Image.Image) -> Image.Image:
    """What the dataset's author did: a flat light-blue shape over the lower half."""
    masked = image.copy()
    w, h = masked.size
    masked.paste((170, 210, 235), (w // 5, h // 2, 4 * w // 5, 5 * h // 6))
    return masked


@pytest.mark.parametrize(
    "transform",
    [
        lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        lambda im: im.rotate(20, resample=Image.Resampling.BILINEAR),
        lambda im: im.rotate(-25, resample=Image.Resampling.BILINEAR).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        lambda im: im.crop((10, 12, im.width - 6, im.height - 4)).resize(im.size),
        _paste_mask,
    ],
    ids=["mirror", "rotate", "rotate+mirror", "shift+zoom", "pasted mask"],
)
def test_copies_of_one_photo_are_similar(transform, tmp_path):
    original = photo(1, size=(240, 320))
    a = _features(original, tmp_path, "a")
    b = _features(transform(original), tmp_path, "b")
    assert nd.pair_similarity(a, b) >= nd.TWIN_THRESHOLD


def test_different_photos_are_not(tmp_path):
    scores = [
        nd.pair_similarity(_features(photo(s), tmp_path, "a"), _features(photo(s + 50), tmp_path, "b"))
        for s in range(5)
    ]
    assert max(scores) < nd.TWIN_THRESHOLD


def test_candidates_include_the_copy(tmp_path):
    images = [photo(s) for s in range(30)] + [photo(7).rotate(15)]
    features = [_features(im, tmp_path, str(i)) for i, im in enumerate(images)]
    assert (7, 30) in nd.candidate_pairs(features, neighbours=3)


def test_real_twins_and_strangers(observations):
    twin = nd.pair_similarity(
        nd.image_features(observations / "with_mask" / "298-with-mask.jpg"),
        nd.image_features(observations / "without_mask" / "298.jpg"),
    )
    rotated_copy = nd.pair_similarity(
        nd.image_features(observations / "with_mask" / "10-with-mask.jpg"),
        nd.image_features(observations / "with_mask" / "augmented_image_299.jpg"),
    )
    strangers = nd.pair_similarity(
        nd.image_features(observations / "without_mask" / "298.jpg"),
        nd.image_features(observations / "without_mask" / "425.jpg"),
    )
    assert twin >= 0.5 and rotated_copy >= nd.TWIN_THRESHOLD
    assert strangers < 0.34


def test_group_images_links_copies_and_numbers_groups_in_order(tmp_path):
    paths = []
    for i, image in enumerate([photo(1), photo(2), photo(1).rotate(10), photo(3), _paste_mask(photo(2))]):
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    labels, _ = nd.group_images(paths, progress=False)
    assert labels.tolist() == [0, 1, 0, 2, 1]
