package signing

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Names of the files WriteKeyFiles creates.
const (
	SignerFile = "signer.pem" // the private key, 0600: only the service reads it
	KeySetFile = "keys.json"  // the public key set runners trust
)

// WriteKeyFiles generates a key pair under keyID and writes dir/signer.pem
// (0600) and dir/keys.json, the public key set for runners (merged into an
// existing keys.json, so that runners keep trusting the previous key during
// a rotation). It refuses to overwrite an existing signer.pem.
func WriteKeyFiles(dir, keyID string) (signerPath, keySetPath string, err error) {
	signer, pub, err := GenerateKey(keyID)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	signerPath, keySetPath = filepath.Join(dir, SignerFile), filepath.Join(dir, KeySetFile)
	keys := []PublicKey{pub}
	if old, err := LoadKeySet(keySetPath); err == nil {
		for _, k := range old.Keys() {
			if k.ID == keyID {
				return "", "", fmt.Errorf("%w: %s already has a key %q", ErrKeyFile, keySetPath, keyID)
			}
			keys = append(keys, k)
		}
	} else if !errors.Is(err, os.ErrNotExist) && fileExists(keySetPath) {
		return "", "", err
	}
	priv, err := MarshalSigner(signer)
	if err != nil {
		return "", "", err
	}
	set, err := MarshalKeySet(keys)
	if err != nil {
		return "", "", err
	}
	f, err := os.OpenFile(signerPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("%w (move the old key away first)", err)
	}
	if _, err := f.Write(priv); err != nil {
		f.Close()
		return "", "", err
	}
	if err := f.Close(); err != nil {
		return "", "", err
	}
	tmp := keySetPath + ".tmp"
	if err := os.WriteFile(tmp, set, 0o644); err != nil {
		return "", "", err
	}
	return signerPath, keySetPath, os.Rename(tmp, keySetPath)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
