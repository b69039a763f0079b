"""Each loss against a hand computation on a tiny input, and learning on lines."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from acai.core.lines import LinesSource
from acai.core.models import MODELS, ConfigError, build, make_hparams
from acai.core.models.acai import autoencoder_loss, critic_loss, fold_alpha
from acai.core.nets import Arch, decoder, encoder

from conftest import SMALL_HPARAMS, TINY, tiny_config


def batch(n=8, step=0):
    return LinesSource().train_batch(seed=0, step=step, batch_size=n)[0]


def draw(model, n, seed):
    return model.draw_noise(n, torch.Generator().manual_seed(seed), torch.device("cpu"), torch.float32)


def test_architecture_shapes_and_init():
    arch = Arch(scales=3, depth=16, latent=2, colors=3)
    enc, dec = encoder(arch), decoder(arch)
    z = enc(torch.randn(5, 3, 32, 32))
    assert z.shape == (5, 2, 4, 4) and arch.dz == 32
    assert dec(z).shape == (5, 3, 32, 32)
    # 1x1 conv, 2 convs per scale, 2 final convs; weights N(0, 1/((1+0.2²)·fan_in)).
    convs = [m for m in enc if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 2 * 3 + 2
    big = encoder(Arch(scales=1, depth=64, latent=64))
    w = [m for m in big if isinstance(m, torch.nn.Conv2d)][2].weight  # 3x3, 64 -> 64
    assert w.std().item() == pytest.approx((1 / (1.04 * 9 * 64)) ** 0.5, rel=0.05)
    assert all(torch.all(m.bias == 0) for m in convs)


def test_baseline_loss_is_mse():
    model = build("baseline", TINY)
    x = batch()
    assert model.draw_noise(8, torch.Generator(), torch.device("cpu"), torch.float32) == {}  # draws nothing
    loss = model.training_losses(x, {}).losses["ae"]
    torch.testing.assert_close(loss, ((model.decode(model.encode(x)) - x) ** 2).mean())


def test_dropout_masks_and_rescales_the_code():
    model = build("dropout", TINY, keep=0.5)
    x = batch()
    z = model.encode(x)
    noise = draw(model, 8, 1)
    loss = model.training_losses(x, noise).losses["ae"]
    mask = noise["mask"]
    assert mask.shape == z.flatten(1).shape and set(mask.unique().tolist()) == {0.0, 1.0}
    expected = ((model.decode(z * 2.0 * mask.view_as(z)) - x) ** 2).mean()  # kept units scaled by 1/keep
    torch.testing.assert_close(loss, expected)
    # The same distribution as F.dropout's mask: each unit kept with probability `keep`.
    big = build("dropout", TINY, keep=0.3).draw_noise(4000, torch.Generator().manual_seed(0), torch.device("cpu"),
                                                     torch.float32)["mask"]
    assert big.mean().item() == pytest.approx(0.3, abs=0.005)
    whole = build("dropout", TINY, keep=1.0)
    torch.testing.assert_close(whole.training_losses(x, draw(whole, 8, 1)).losses["ae"],
                               ((whole.decode(whole.encode(x)) - x) ** 2).mean())


def test_denoising_encodes_noisy_input_and_probes_clean_code():
    model = build("denoising", TINY, noise=1.0)
    x = batch()
    noise = draw(model, 8, 2)
    out = model.training_losses(x, noise)
    assert noise["pixels"].shape == x.shape and abs(noise["pixels"].std().item() - 1) < 0.1
    noisy = x + noise["pixels"]
    torch.testing.assert_close(out.losses["ae"], ((model.decode(model.encode(noisy)) - x) ** 2).mean())
    torch.testing.assert_close(out.features, model.encode(x))
    quiet = build("denoising", TINY, noise=0.0)
    torch.testing.assert_close(quiet.training_losses(x, noise).losses["ae"],
                               ((quiet.decode(quiet.encode(x)) - x) ** 2).mean())


def test_vae_loss_is_bernoulli_nll_plus_kl():
    model = build("vae", TINY, beta=0.7)
    x = batch(4)
    noise = draw(model, 4, 3)
    loss = model.training_losses(x, noise).losses["ae"]
    h, mu, log_var = model.posterior(x)
    eps = noise["eps"]
    assert eps.shape == mu.shape
    logits = model.decoder((mu + (0.5 * log_var).exp() * eps).view(-1, *TINY.latent_shape))
    p = (x + 1) / 2
    nll = -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits)).sum() / 4
    sigma2 = log_var.exp()
    kl = 0.5 * (sigma2 + mu**2 - 1 - torch.log(sigma2)).sum() / 4
    torch.testing.assert_close(loss, nll + 0.7 * kl)
    assert model.decode(torch.zeros(1, *TINY.latent_shape)).abs().max() <= 1


def test_vae_interpolates_samples_by_default_and_mean_on_request():
    x = batch(4)
    sampled, generator = build("vae", TINY), torch.Generator().manual_seed(0)
    assert not torch.equal(sampled.encode(x, generator), sampled.encode(x, generator))
    mean = build("vae", TINY, interpolate_mean=True)
    torch.testing.assert_close(mean.encode(x), mean.encode(x))


def test_aae_losses_are_sigmoid_cross_entropies():
    model = build("aae", TINY)
    x = batch(6)
    noise = draw(model, 6, 4)
    out = model.training_losses(x, noise)
    z = model.encode(x)
    prior = noise["prior"]
    assert prior.shape == z.shape
    lc, lp = model.critic(z), model.critic(prior)
    sce = lambda logit, label: torch.mean(torch.clamp(logit, min=0) - logit * label + torch.log1p(torch.exp(-logit.abs())))
    torch.testing.assert_close(out.losses["critic"], sce(lc, 0.0) + sce(lp, 1.0))
    torch.testing.assert_close(out.losses["ae"], ((model.decode(z) - x) ** 2).mean() + sce(lc, 1.0))
    assert set(model.param_groups()) == {"ae", "critic"}


def test_vqvae_snaps_to_nearest_entry_with_straight_through_gradient():
    model = build("vqvae", TINY, codebook_log2=4, num_latents=2)
    x = batch(3)
    z = model.encode(x)
    code, vectors, nearest = model.quantise(z)
    assert vectors.shape == (3 * 2, TINY.dz)
    brute = torch.cdist(vectors, model.codebook).argmin(1)
    torch.testing.assert_close(nearest, brute)
    # Straight-through: the gradient reaches the encoder although argmin has none.
    code.sum().backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0


def test_vqvae_search_matches_float64_brute_force_on_the_full_codebook():
    # 2^14 entries drawn within ±sqrt(3/2^14): as close together as the release's initial codebook.
    model = build("vqvae", TINY)
    vectors = torch.randn(640, TINY.dz, generator=torch.Generator().manual_seed(0)) * model.codebook.std()
    exact = torch.cdist(vectors.double(), model.codebook.double()).argmin(1)
    assert (model.nearest_entries(vectors) == exact).float().mean() >= 0.999


def test_vqvae_ema_update_by_hand():
    model = build("vqvae", TINY, codebook_log2=2, decay=0.9, epsilon=1e-5)
    dz = TINY.dz
    before_sum, before_count = model.ema_sum.clone(), model.ema_count.clone()
    vectors = torch.randn(5, dz)
    nearest = torch.tensor([0, 0, 2, 3, 0])
    new = model.codebook_update(vectors, nearest)
    counts = torch.tensor([3.0, 0, 1, 1])
    ema_count = 0.9 * before_count + 0.1 * counts
    sums = torch.stack([vectors[[0, 1, 4]].sum(0), torch.zeros(dz), vectors[2], vectors[3]])
    ema_sum = 0.9 * before_sum + 0.1 * sums
    n = ema_count.sum()
    smoothed = (ema_count + 1e-5) / (n + 4 * 1e-5) * n
    torch.testing.assert_close(new["ema_count"], ema_count)
    torch.testing.assert_close(new["ema_sum"], ema_sum)
    torch.testing.assert_close(new["codebook"], ema_sum / smoothed[:, None])
    torch.testing.assert_close(model.ema_sum, before_sum)  # nothing written: the trainer stores the values


def test_vqvae_training_step_stores_the_ema_codebook():
    from acai.training.run import build_run, train_step

    run = build_run(tiny_config("vqvae"))
    x, y = run.source.train_batch(0, 0, 8)
    with torch.no_grad():
        _, vectors, nearest = run.model.quantise(run.model.encode(x))
        expected = run.model.codebook_update(vectors, nearest)
    train_step(run, x, y)
    for name, value in expected.items():
        torch.testing.assert_close(run.model.get_buffer(name), value)


def test_vqvae_codebook_from_data_is_seeded_once_by_the_first_batch_and_off_by_default():
    from acai.training.run import build_run, train_step

    assert "codebook_seeded" not in build("vqvae", TINY).state_dict()  # the release's codebook, its checkpoints
    run = build_run(tiny_config("vqvae", hparams=dict(codebook_log2=8, codebook_from_data=True), init="he"))
    model = run.model
    x, y = run.source.train_batch(0, 0, 8)
    jitter = model.codebook.clone()  # the release's uniform draw
    with torch.no_grad():
        vectors = model.project(model.encode(x).flatten(1)).view(-1, TINY.dz)  # (8·L, d_z)
        state = model.codebook_state(model.encode(x))
    entries = len(jitter)
    copies = vectors[torch.arange(entries) % len(vectors)] + jitter
    torch.testing.assert_close(state["codebook"], copies)
    torch.testing.assert_close(state["ema_count"].sum(), torch.tensor(float(len(vectors))))
    torch.testing.assert_close(state["ema_sum"], copies * (len(vectors) / entries))
    with torch.no_grad():  # the vectors spread over the seeded entries; on the release's they crowd a few
        seeded_codes = model.nearest_entries(vectors, state["codebook"]).unique().numel()
        release_codes = model.nearest_entries(vectors, jitter).unique().numel()
    assert seeded_codes > 2 * release_codes
    train_step(run, x, y)
    assert model.codebook_seeded.item() == 1
    with torch.no_grad():  # the second batch finds the stored codebook, not a new seeding
        second = model.codebook_state(model.encode(run.source.train_batch(0, 1, 8)[0]))
    torch.testing.assert_close(second["codebook"], model.codebook)
    assert float((model.codebook - copies).abs().max()) < float(copies.abs().max())  # the EMA moved, not reseeded


def test_vqvae_commitment_term():
    model = build("vqvae", TINY, codebook_log2=4, commitment=10.0)
    x = batch(2)
    code, vectors, nearest = model.quantise(model.encode(x))
    expected = ((model.decoder(code) - x) ** 2).mean() + 10.0 * ((vectors - model.codebook[nearest]) ** 2).mean()
    torch.testing.assert_close(model.training_losses(x, {}).losses["ae"], expected)


def test_acai_alpha_folding():
    alpha = torch.tensor([0.0, 0.2, 0.5, 0.7, 1.0])
    torch.testing.assert_close(fold_alpha(alpha), torch.tensor([0.0, 0.2, 0.5, 0.3, 0.0]))


def test_acai_equations_by_hand():
    d_mix, alpha, d_blend = torch.tensor([0.1, 0.4]), torch.tensor([0.3, 0.2]), torch.tensor([0.5, -0.5])
    # eq. 1: mean((0.1-0.3)², (0.4-0.2)²) + mean(0.25, 0.25) = 0.04 + 0.25
    torch.testing.assert_close(critic_loss(d_mix, alpha, d_blend), torch.tensor(0.29))
    x, rec = torch.zeros(2, 1, 1, 1), torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)
    # eq. 2: mean(1, 9) + 0.5 · mean(0.01, 0.16) = 5 + 0.0425
    torch.testing.assert_close(autoencoder_loss(rec, x, d_mix, 0.5), torch.tensor(5.0425))


def test_acai_step_pairs_with_reversed_batch_and_blends_with_gamma():
    model = build("acai", TINY, lam=0.5, gamma=0.2)
    x = batch(4)
    noise = draw(model, 4, 5)
    out = model.training_losses(x, noise)
    alpha = fold_alpha(noise["alpha"])
    assert noise["alpha"].shape == (4, 1, 1, 1)
    z = model.encode(x)
    z_mix = torch.stack([alpha[i] * z[i] + (1 - alpha[i]) * z[3 - i] for i in range(4)])
    rec, x_mix = model.decode(z), model.decode(z_mix)
    d = lambda images: model.critic(images).mean(dim=(1, 2, 3))
    d_mix, d_blend = d(x_mix), d(0.2 * x + 0.8 * rec)
    torch.testing.assert_close(out.losses["critic"], ((d_mix - alpha.flatten()) ** 2).mean() + (d_blend**2).mean())
    torch.testing.assert_close(out.losses["ae"], ((rec - x) ** 2).mean() + 0.5 * (d_mix**2).mean())


def test_acai_critic_has_own_weights_and_depth():
    model = build("acai", TINY, critic_depth=8)
    assert model.critic[0].out_channels == 8 and model.encoder[0].out_channels == TINY.depth
    ae = {id(p) for p in model.param_groups()["ae"]["params"]}
    critic = {id(p) for p in model.param_groups()["critic"]["params"]}
    assert not ae & critic and len(ae | critic) == len(list(model.parameters()))


def test_hparams_validation():
    with pytest.raises(ConfigError, match="no hyper-parameter"):
        make_hparams("acai", {"lamda": 1})
    with pytest.raises(ConfigError, match="unknown model"):
        make_hparams("gan", {})
    with pytest.raises(ConfigError, match="keep"):
        make_hparams("dropout", {"keep": 0})
    defaults = {name: dataclasses.asdict(make_hparams(name)) for name in MODELS}
    assert defaults["acai"] == {"lam": 0.5, "gamma": 0.2, "critic_depth": None}
    assert defaults["vqvae"]["codebook_log2"] == 14 and defaults["vqvae"]["commitment"] == 10.0


@pytest.mark.parametrize("name", list(MODELS))
def test_few_hundred_steps_reduce_reconstruction_error(name):
    from acai.training.run import build_run, train_step

    run = build_run(tiny_config(name, seed=0, lr=1e-3))
    probe_x = LinesSource().train_batch(seed=99, step=0, batch_size=256)[0]

    def error():
        with torch.no_grad():
            run.model.eval()
            if name == "vae":
                return ((run.model.decode(run.model.posterior(probe_x)[1].view(-1, *run.model.arch.latent_shape))
                         - probe_x) ** 2).mean().item()
            return ((run.model.decode(run.model.encode(probe_x)) - probe_x) ** 2).mean().item()

    before = error()
    for step in range(200):
        x, y = run.source.train_batch(0, step, 32)
        run.model.train()
        train_step(run, x, y)
    after = error()
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("name", list(MODELS))
def test_random_codes_have_the_latent_shape_and_decode_to_images(name):
    model = build(name, TINY, **SMALL_HPARAMS.get(name, {}))
    z = model.random_codes(6, torch.Generator().manual_seed(0))
    assert z.shape == (6, *TINY.latent_shape)
    torch.testing.assert_close(z, model.random_codes(6, torch.Generator().manual_seed(0)))  # the generator decides
    with torch.no_grad():
        assert model.decode(z).shape == (6, TINY.colors, TINY.size, TINY.size)
    # Samples of a prior only where the model was trained towards one (the release decodes N(0, I) for all):
    # there, random_codes draws the very numbers that stand for the prior in a training step (the AAE's
    # critic reads them as the prior's codes; the VAE's ε, whose N(0, I) its KL term pulls the codes to).
    if model.PRIOR is not None:
        [prior] = draw(model, 6, 0).values()
        torch.testing.assert_close(prior.view(6, *TINY.latent_shape), z)
    # A model whose CODES says they are sampled (the VAE) encodes an image to another code with another
    # generator; every other model's code is a function of the image.
    x = batch(4)
    with torch.no_grad():
        codes = [model.encode(x, torch.Generator().manual_seed(seed)) for seed in (0, 1)]
    assert (not torch.equal(*codes)) == ("sampled" in model.CODES), model.CODES


def test_vqvae_codes_are_the_continuous_encoder_output():
    model = build("vqvae", TINY, **SMALL_HPARAMS["vqvae"])
    x = batch(4)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x), model.encoder(x))
        assert not torch.allclose(model.encode(x), model.features(x))  # the probe reads the quantised bottleneck
